"""ONNX Runtime backend: the CPU execution provider always; CUDA / TensorRT providers when
onnxruntime-gpu is installed (the provider asked for must be the one in use)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import KasfError
from ..export.onnx import INPUT_NAME, read_metadata
from .base import Engine


class OnnxRuntimeEngine(Engine):
    backend = "onnxruntime"

    def __init__(self, path: str | Path, providers: Sequence[str] = ("CPUExecutionProvider",),
                 threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise KasfError(f"ONNX model {path} does not exist")
        meta = read_metadata(path)
        if "kasf_model_config" not in meta:
            raise KasfError(f"{path} has no kasf metadata: export it with `kasf export` / export/to_onnx.py")
        precision = meta.get("kasf_precision", "fp32")
        super().__init__(meta["kasf_model_config"]["n_frames"], precision)
        options = ort.SessionOptions()
        # ORT_ENABLE_ALL has crashed ORT on FP16 graphs (see the README); EXTENDED is safe.
        options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED if precision == "fp16"
                                            else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=list(providers))
        except Exception as err:  # ORT raises its own Fail/InvalidGraph/... types
            raise KasfError(f"ONNX Runtime cannot load {path}: {err}") from None
        missing = [p for p in providers if p not in self.session.get_providers()]
        if missing:
            raise KasfError(f"ONNX Runtime fell back from {', '.join(missing)} to {self.session.get_providers()}: "
                            "install onnxruntime-gpu with a matching CUDA, or ask for CPUExecutionProvider")
        self.path, self.providers = path, list(providers)

    def _infer(self, keypoints: torch.Tensor) -> np.ndarray:
        return self.session.run(None, {INPUT_NAME: keypoints.numpy()})[0]

    def metadata(self) -> dict:
        return {**super().metadata(), "path": str(self.path), "providers": self.providers}
