"""Engines: one interface (load, infer, metadata, warm-up, close) over several backends.

`load_engine(path)` picks the backend from the file's suffix, from one table: adding a backend is
one row and one module. Backend modules are imported only when used, so a missing optional
package (TensorRT, onnxruntime-gpu) matters only to the backend that needs it.
"""

from __future__ import annotations

import importlib
import json
import inspect
from dataclasses import dataclass
from pathlib import Path

from ..errors import KasfError
from .base import Engine


@dataclass(frozen=True)
class Backend:
    name: str
    suffixes: tuple[str, ...]
    module: str     # inside kasf.engines
    engine: str     # the Engine subclass in it


BACKENDS = {backend.name: backend for backend in (
    Backend("onnxruntime", (".onnx",), "onnxruntime", "OnnxRuntimeEngine"),
    Backend("tensorrt", (".engine", ".plan"), "tensorrt", "TensorRTEngine"),
    Backend("torch", (".pt", ".pth"), "torch", "TorchEngine"),
    Backend("aoti", (".pt2",), "aoti", "AotiEngine"),
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


def engine_class(backend: Backend) -> type[Engine]:
    return getattr(importlib.import_module(f"{__name__}.{backend.module}"), backend.engine)


def load_engine(path: str | Path, backend: str | None = None, **options) -> Engine:
    """Open a model file with the backend its suffix names (.onnx: ONNX Runtime, .engine/.plan:
    TensorRT, .pt/.pth: PyTorch, .pt2: AOTInductor), or the one given; options go to that backend's
    engine."""
    path = Path(path)
    chosen = backend_for(path, backend)
    if not path.is_file():
        raise KasfError(f"model file {path} does not exist")
    cls = engine_class(chosen)
    parameters = inspect.signature(cls).parameters
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        takes = ", ".join(name for name in parameters if name not in ("path", "source")) or "no options"
        raise KasfError(f"the {chosen.name} backend has no option {', '.join(map(repr, unknown))}; it takes {takes}")
    return cls(path, **options)


def recorded_model(path: str | Path, backend: str | None = None, config=None) -> tuple[dict, dict]:
    """(model config, source checkpoint) that a model file records, without loading the engine:
    an ONNX graph's or AOTInductor package's kasf metadata, a TensorRT plan's sidecar, a checkpoint
    itself (config: the authors' YAML for their checkpoints)."""
    path = Path(path)
    chosen = backend_for(path, backend)
    if not path.is_file():
        raise KasfError(f"model file {path} does not exist")
    if chosen.name == "torch":
        from ..model.checkpoint import read_checkpoint

        checkpoint = read_checkpoint(path, config)
        return checkpoint.config.to_dict(), checkpoint.source
    if chosen.name == "tensorrt":
        from .tensorrt import read_sidecar

        sidecar = read_sidecar(path)
        return sidecar["model_config"], sidecar["kasf_metadata"].get("kasf_source", {})
    if chosen.name == "aoti":
        from .aoti import read_package_metadata

        values = read_package_metadata(path)[1]
        return json.loads(values["kasf_model_config"]), json.loads(values.get("kasf_source", "{}"))
    from ..export.onnx import read_metadata

    meta = read_metadata(path)
    if "kasf_model_config" not in meta:
        raise KasfError(f"{path} has no kasf metadata: export it with `kasf export`")
    return meta["kasf_model_config"], meta.get("kasf_source", {})


def add_engine_arguments(parser) -> None:
    """The engine options of every command that loads a model file; a backend refuses the
    options it does not take (load_engine says which it takes)."""
    options = parser.add_argument_group("engine options")
    options.add_argument("--backend", choices=sorted(BACKENDS), help="default: from the file's suffix")
    options.add_argument("--config", help="the authors' YAML, for their checkpoints")
    options.add_argument("--device", help="torch: cpu, cuda, cuda:N; tensorrt: cuda:N")
    options.add_argument("--precision", choices=("fp32", "fp16"), help="torch: fp32 (default) or fp16 (CUDA)")
    options.add_argument("--cuda-graphs", action="store_true", help="torch, tensorrt: replay CUDA graphs")
    options.add_argument("--provider", help="onnxruntime: cpu (default), cuda or tensorrt")
    options.add_argument("--threads", type=int, help="onnxruntime, aoti: intra-op threads")


def engine_options(args, backend: str) -> dict:
    """The engine options given on a command line made by add_engine_arguments."""
    given = {"device": args.device, "precision": args.precision, "cuda_graphs": args.cuda_graphs or None,
             "provider": args.provider, "threads": args.threads, "config": args.config if backend == "torch" else None}
    return {name: value for name, value in given.items() if value is not None}
