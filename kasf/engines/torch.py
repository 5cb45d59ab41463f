"""PyTorch backend: the reference model itself, from a checkpoint or a model object.

FP32 on the CPU or a CUDA device; on CUDA also FP16 (the weights in half precision, inputs and
outputs FP32) and CUDA graphs: one graph per batch size, captured on the first call with that
batch and replayed afterwards from static input and output buffers.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from ..errors import KasfError
from ..model.checkpoint import load_model, read_checkpoint
from ..model.config import ModelConfig
from ..model.kasportsformer import KASportsFormer, example_keypoints
from .base import Engine, cuda_event_seconds
from .variants import ModelFiles, Variant

PRECISIONS = ("fp32", "fp16")


class TorchEngine(Engine):
    backend = "torch"

    def __init__(self, source: str | Path | KASportsFormer, config: ModelConfig | str | Path | None = None,
                 device: str | torch.device = "cpu", precision: str = "fp32", cuda_graphs: bool = False):
        """source: a kasf or authors' checkpoint (config: the authors' YAML for theirs) or a model,
        which is copied, never changed. precision "fp16" and cuda_graphs need a CUDA device."""
        device = torch.device(device)
        if precision not in PRECISIONS:
            raise KasfError(f"unknown precision {precision!r}: the torch backend runs {' or '.join(PRECISIONS)}")
        if device.type != "cuda" and precision == "fp16":
            raise KasfError(f"precision 'fp16' needs a CUDA device, got device '{device}': PyTorch's CPU kernels "
                            "for half precision are slow and not what an FP16 deployment runs; use fp32 on the CPU")
        if device.type != "cuda" and cuda_graphs:
            raise KasfError(f"CUDA graphs need a CUDA device, got device '{device}'")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise KasfError(f"device '{device}' asked for, but this torch ({torch.__version__}) sees no CUDA device")
        if isinstance(source, KASportsFormer):
            model, self.checkpoint = copy.deepcopy(source), None
        else:
            model, self.checkpoint = load_model(source, config), Path(source)
        self.model = model.eval().to(device)
        if precision == "fp16":
            self.model.half()
        super().__init__(model.config.n_frames, precision)
        self.device, self.cuda_graphs = device, cuda_graphs
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def recorded_model(cls, path: Path, config=None) -> tuple[dict, dict]:
        checkpoint = read_checkpoint(path, config)
        return checkpoint.config.to_dict(), checkpoint.source

    @classmethod
    def variants(cls, files: ModelFiles) -> list[Variant]:
        """Eager FP32 on the CPU (the reference); on a CUDA device FP32, FP16 and FP16 with CUDA graphs."""
        path = files.checkpoint_path
        found = [Variant("torch fp32 cpu", cls.backend, "fp32", "cpu", path, streaming_rank=3)]
        if torch.cuda.is_available():
            found += [Variant(f"torch {p} cuda", cls.backend, p, "cuda", path, {"device": "cuda", "precision": p})
                      for p in PRECISIONS]
            found.append(Variant("torch fp16 cuda graphs", cls.backend, "fp16", "cuda", path,
                                 {"device": "cuda", "precision": "fp16", "cuda_graphs": True}, primary=False))
        return found

    def _forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        dtype = torch.float16 if self.precision == "fp16" else torch.float32
        return self.model(keypoints.to(dtype)).float()

    @torch.no_grad()
    def _infer(self, keypoints: torch.Tensor) -> np.ndarray:
        if not self.cuda_graphs:
            return self._forward(keypoints.to(self.device)).cpu().numpy()
        graph, static_input, static_output = self._graphs.get(len(keypoints)) or self._capture(len(keypoints))
        static_input.copy_(keypoints)
        graph.replay()
        return static_output.cpu().numpy()

    def _capture(self, batch: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        """Warm up on a side stream (as torch's CUDA-graph recipe asks), then capture one forward pass."""
        static_input = example_keypoints(batch, self.n_frames, device=self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self._forward(static_input)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                static_output = self._forward(static_input)
        except RuntimeError as err:
            raise KasfError(f"capturing a CUDA graph of the model for batch {batch} failed: {err}") from None
        self._graphs[batch] = (graph, static_input, static_output)
        return self._graphs[batch]

    def compute_timer(self, batch: int):
        if self.device.type != "cuda":
            return None
        if self.cuda_graphs:
            graph = (self._graphs.get(batch) or self._capture(batch))[0]
            return lambda: cuda_event_seconds(graph.replay)
        resident = example_keypoints(batch, self.n_frames, device=self.device)

        @torch.no_grad()
        def forward():
            self._forward(resident)
        return lambda: cuda_event_seconds(forward)

    def metadata(self) -> dict:
        return {**super().metadata(), "checkpoint": None if self.checkpoint is None else str(self.checkpoint),
                "device": str(self.device), "cuda_graphs": self.cuda_graphs,
                "model_config": self.model.config.to_dict()}

    def close(self) -> None:
        self._graphs.clear()
