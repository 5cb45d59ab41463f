"""Engines: one interface (load, infer, metadata, warm-up, close) over several backends.

`load_engine(path)` picks the backend from the file's suffix, from one table, BACKENDS: adding a
backend is one module (an Engine subclass) and one row here. Backend modules are imported only
when used, so a missing optional package (TensorRT, onnxruntime-gpu) matters only to the backend
that needs it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import KasfError
from .base import Engine
from .table import Backend, Option

_THREADS = Option("threads", (int,), "intra-op threads")
_CUDA_GRAPHS = Option("cuda_graphs", (bool,), "replay CUDA graphs")

BACKENDS: dict[str, Backend] = {backend.name: backend for backend in (
    Backend("torch", (".pt", ".pth"), ".torch", "TorchEngine", ("fp32", "fp16", "bf16"), (
        Option("config", (str, Path), "the authors' YAML, for their checkpoints"),
        Option("device", (str, torch.device), "cpu, cuda, cuda:N"),
        Option("precision", (str,), "fp32 (default), fp16 (CUDA) or bf16 (CPUs with AVX-512 BF16 or AMX, "
               "GPUs from Ampere)", ("fp32", "fp16", "bf16")),
        _CUDA_GRAPHS,
    ), opens_checkpoints=True),
    Backend("onnxruntime", (".onnx",), ".onnxruntime", "OnnxRuntimeEngine", ("fp32", "fp16", "int8"), (
        Option("provider", (str,), "cpu (default), cuda or tensorrt"),
        _THREADS,
        Option("device_id", (int,), "the GPU providers' device", command_line=False),
        Option("io_binding", (bool,), "bind torch tensors on the provider's device", command_line=False),
        Option("trt_batch_profile", (tuple, list), "the TensorRT provider's (min, opt, max) batch",
               command_line=False),
        Option("trt_cache_dir", (str, Path), "the TensorRT provider's engine and timing cache",
               command_line=False),
        Option("spin_wait", (bool,), "CPU threads spin between runs (default true)", command_line=False),
    ), requires=("onnxruntime",)),
    Backend("tensorrt", (".engine", ".plan"), ".tensorrt", "TensorRTEngine", ("fp32", "fp16"), (
        Option("device", (str, int), "cuda:N"), _CUDA_GRAPHS,
    ), requires=("tensorrt",), needs_cuda=True),
    Backend("aoti", (".pt2",), ".aoti", "AotiEngine", ("fp32", "bf16"), (_THREADS,)),
)}


def backend_for(path: str | Path, backend: str | None = None) -> Backend:
    """The backend asked for by name, or the one whose suffix the file has."""
    if backend is not None:
        if backend not in BACKENDS:
            raise KasfError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        return BACKENDS[backend]
    suffix = Path(path).suffix.lower()
    for candidate in BACKENDS.values():
        if suffix in candidate.suffixes:
            return candidate
    known = ", ".join(f"{s} ({b.name})" for b in BACKENDS.values() for s in b.suffixes)
    raise KasfError(f"cannot tell the backend of {path} from its suffix {suffix or '(none)'!r}: kasf knows {known}; "
                    "name one with backend=... / --backend")


def load_engine(path: str | Path, backend: str | None = None, **options) -> Engine:
    """Open a model file with the backend its suffix names (see BACKENDS), or the one given;
    options go to that backend's engine, checked against its row first."""
    path = Path(path)
    chosen = backend_for(path, backend)
    if not path.is_file():
        raise KasfError(f"model file {path} does not exist")
    return chosen.engine_class()(path, **chosen.check_options(options))


def recorded_model(path: str | Path, backend: str | None = None, config=None) -> tuple[dict, dict]:
    """(model config, source checkpoint) that a model file records, without loading the engine:
    an ONNX graph's or AOTInductor package's kasf metadata, a TensorRT plan's sidecar, a checkpoint
    itself (config: the authors' YAML for their checkpoints)."""
    return backend_for(path, backend).recorded_model(path, config)


__all__ = ["BACKENDS", "Backend", "Engine", "Option", "backend_for", "load_engine", "recorded_model"]
