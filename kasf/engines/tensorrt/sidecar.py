"""The sidecar `<engine>.json` beside every plan kasf builds: what the plan was built for (TensorRT
version, GPU, compute capability, profile, names, model config, the ONNX's kasf metadata and
SHA-256), checked against the running TensorRT and GPU before a plan is deserialised."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import torch

from ... import __version__
from ...errors import KasfError

SIDECAR_FORMAT = "kasf-tensorrt-engine"
SIDECAR_VERSION = 1
INSTALL_HINT = ("pip install 'kasf[tensorrt]' --extra-index-url https://pypi.nvidia.com "
                "(NVIDIA publishes the TensorRT wheels on its own index)")


class EngineCompatibilityError(KasfError):
    """A TensorRT plan built for another TensorRT version or GPU compute capability."""


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as err:
        raise KasfError(f"TensorRT is not installed ({err}): {INSTALL_HINT}") from None
    return tensorrt


def sidecar_path(engine_path: str | Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def layers_path(engine_path: str | Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".layers.json")


def read_sidecar(engine_path: str | Path) -> dict:
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise KasfError(f"{engine_path} has no sidecar {path.name}: kasf runs only plans it built, with what they "
                        "were built for next to them; build it with `kasf build`")
    try:
        sidecar = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise KasfError(f"sidecar {path} is not valid JSON ({err}): rebuild the engine with `kasf build`") from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        raise KasfError(f"{path} is not a kasf TensorRT sidecar (no format '{SIDECAR_FORMAT}')")
    if sidecar.get("format_version", 0) > SIDECAR_VERSION:
        raise KasfError(f"sidecar {path} is format version {sidecar['format_version']}; this kasf ({__version__}) "
                        f"reads up to {SIDECAR_VERSION}: upgrade kasf")
    return sidecar


def compute_capability_text(capability: tuple[int, int] | str) -> str:
    return capability if isinstance(capability, str) else f"{capability[0]}.{capability[1]}"


def check_engine_compatibility(sidecar: Mapping[str, Any], tensorrt_version: str, gpu_name: str,
                               compute_capability: tuple[int, int] | str) -> list[str]:
    """Refuse a plan built for another TensorRT version or compute capability, saying which.
    Returns notes on what TensorRT accepts but a user should know (another GPU model of the same
    compute capability: its tactics were timed on the other model)."""
    running_cc = compute_capability_text(compute_capability)
    problems = []
    for key in ("tensorrt_version", "compute_capability", "gpu_name"):
        if key not in sidecar:
            problems.append(f"the sidecar does not say its {key.replace('_', ' ')}")
    built_version, built_cc = sidecar.get("tensorrt_version"), sidecar.get("compute_capability")
    if built_version is not None and built_version != tensorrt_version:
        problems.append(f"it was built with TensorRT {built_version}, this is TensorRT {tensorrt_version}")
    if built_cc is not None and built_cc != running_cc:
        problems.append(f"it was built for compute capability {built_cc} ({sidecar.get('gpu_name')}), "
                        f"this GPU ({gpu_name}) is compute capability {running_cc}")
    if problems:
        onnx = sidecar.get("onnx", {}).get("path", "model.onnx")
        raise EngineCompatibilityError(
            "this TensorRT engine cannot run here: " + "; ".join(problems) + ". A plan runs only on the TensorRT "
            f"version and GPU compute capability it was built for: rebuild it here (`kasf build {onnx} -o ...`)")
    if sidecar["gpu_name"] != gpu_name:
        return [f"built on a {sidecar['gpu_name']}, running on a {gpu_name} (both compute capability {running_cc}): "
                "TensorRT accepts it, but its kernels were timed on the other GPU; rebuild here for best speed"]
    return []


def require_cuda(what: str) -> None:
    if not torch.cuda.is_available():
        raise KasfError(f"{what} needs an NVIDIA GPU, and this torch ({torch.__version__}) sees no CUDA device")


def cuda_index(device: int | str) -> int:
    parsed = torch.device(f"cuda:{device}" if isinstance(device, int) else device)
    if parsed.type != "cuda":
        raise KasfError(f"TensorRT runs on a CUDA device, got device '{device}'")
    return parsed.index or 0


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
