"""PyTorch backend: the reference model itself, from a checkpoint or a model object.

FP32 on the CPU or a CUDA device; on CUDA also FP16 (the weights in half precision, inputs and
outputs FP32) and CUDA graphs: one graph per batch size, captured on the first call with that
batch and replayed afterwards from static input and output buffers.

BF16 (CPUs with AVX-512 BF16 or AMX, GPUs from Ampere; refused elsewhere, where it would be
emulated) runs the BF16 export form (kasf.export.fuse), not the reference cast: its FP32 islands
keep the token stream, the statistics and the neighbour choice in FP32, where BF16's 8-bit
mantissa would lose LayerScale's ~1e-4 updates of the stream. Inputs and outputs stay FP32.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import KasfError
from ..export.fuse import fuse
from ..hardware import bf16_unavailable
from ..model.checkpoint import load_model, read_checkpoint
from ..model.config import ModelConfig
from ..model.kasportsformer import KASportsFormer, example_keypoints
from .base import Engine, cuda_event_seconds
from .variants import ModelFiles, Variant, skipped

# The dtype each precision's model takes its keypoints in (the BF16 export form takes FP32).
INPUT_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.float32}
PRECISIONS = tuple(INPUT_DTYPES)


def built(model: KASportsFormer, device: torch.device, precision: str) -> nn.Module:
    """The model as a precision runs it: the reference (FP32, or its weights FP16), or the BF16 export form."""
    if precision == "bf16":
        return fuse(model, torch.bfloat16).to(device)
    model = model.eval().to(device)
    return model.half() if precision == "fp16" else model


class TorchEngine(Engine):
    backend = "torch"

    def __init__(self, source: str | Path | KASportsFormer, config: ModelConfig | str | Path | None = None,
                 device: str | torch.device = "cpu", precision: str = "fp32", cuda_graphs: bool = False):
        """source: a kasf or authors' checkpoint (config: the authors' YAML for theirs) or a model,
        which is copied, never changed. precision "fp16" and cuda_graphs need a CUDA device, "bf16"
        a device that computes BF16 fast (kasf.hardware.bf16_unavailable says why not)."""
        device = torch.device(device)
        if precision not in PRECISIONS:
            raise KasfError(f"unknown precision {precision!r}: the torch backend runs {', '.join(PRECISIONS)}")
        if device.type != "cuda" and precision == "fp16":
            raise KasfError(f"precision 'fp16' needs a CUDA device, got device '{device}': PyTorch's CPU kernels "
                            "for half precision are slow and not what an FP16 deployment runs; use fp32 (or bf16) "
                            "on the CPU")
        if device.type != "cuda" and cuda_graphs:
            raise KasfError(f"CUDA graphs need a CUDA device, got device '{device}'")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise KasfError(f"device '{device}' asked for, but this torch ({torch.__version__}) sees no CUDA device")
        reason = bf16_unavailable(device) if precision == "bf16" else None
        if reason:
            raise KasfError(f"precision 'bf16' on device '{device}' would not run fast: {reason}; use fp32")
        if isinstance(source, KASportsFormer):
            model, self.checkpoint = copy.deepcopy(source), None
        else:
            model, self.checkpoint = load_model(source, config), Path(source)
        self.model = built(model, device, precision)
        super().__init__(model.config.n_frames, precision)
        self.device, self.cuda_graphs = device, cuda_graphs
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def recorded_model(cls, path: Path, config=None) -> tuple[dict, dict]:
        checkpoint = read_checkpoint(path, config)
        return checkpoint.config.to_dict(), checkpoint.source

    @classmethod
    def variants(cls, files: ModelFiles) -> list[Variant]:
        """Eager FP32 on the CPU (the reference); on a CUDA device FP32, FP16 and FP16 with CUDA graphs;
        BF16 as candidates (it costs precision), skipped with the reason where the CPU or GPU would
        emulate it."""
        path = files.checkpoint_path
        found = [Variant("torch fp32 cpu", cls.backend, "fp32", "cpu", path, streaming_rank=3)]
        if torch.cuda.is_available():
            found += [Variant(f"torch {p} cuda", cls.backend, p, "cuda", path, {"device": "cuda", "precision": p})
                      for p in ("fp32", "fp16")]
            found.append(Variant("torch fp16 cuda graphs", cls.backend, "fp16", "cuda", path,
                                 {"device": "cuda", "precision": "fp16", "cuda_graphs": True}, role="alternative"))
        bf16 = (("cpu", {"precision": "bf16"}), ("cuda", {"device": "cuda", "precision": "bf16"}))
        found += [Variant(f"torch bf16 {device}", cls.backend, "bf16", device, path, options, role="candidate",
                          status=skipped(bf16_unavailable(device)))
                  for device, options in bf16 if device == "cpu" or torch.cuda.is_available()]
        return found

    def _forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        return self.model(keypoints.to(INPUT_DTYPES[self.precision])).float()

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
        """Events on the current stream of the engine's device, made current: a graph replays, and
        kernels launch, on that stream, while events record on the current device's."""
        if self.device.type != "cuda":
            return None
        with torch.cuda.device(self.device):
            run = self._timed_run(batch)

        def timed() -> float:
            with torch.cuda.device(self.device):
                return cuda_event_seconds(run)
        return timed

    def _timed_run(self, batch: int):
        if self.cuda_graphs:
            return (self._graphs.get(batch) or self._capture(batch))[0].replay
        resident = example_keypoints(batch, self.n_frames, device=self.device)

        @torch.no_grad()
        def forward():
            self._forward(resident)
        return forward

    def metadata(self) -> dict:
        return {**super().metadata(), "checkpoint": None if self.checkpoint is None else str(self.checkpoint),
                "device": str(self.device), "cuda_graphs": self.cuda_graphs,
                "model_config": self.model.config.to_dict()}

    def close(self) -> None:
        self._graphs.clear()
