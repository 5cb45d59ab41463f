"""What this machine's processors can compute fast: the CPU's vector and matrix instruction sets
(AVX-512 VNNI and BF16, AMX) and a GPU's BF16 support. Engines refuse a precision the hardware
lacks, saying why; the bench records the facts beside its figures and picks its peaks by them."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

# The CPU flags that decide which low-precision kernels run fast, as /proc/cpuinfo names them.
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


@functools.lru_cache(maxsize=1)
def cpu_features() -> frozenset[str]:
    """The CPU_FLAGS this machine's first CPU has (empty where /proc/cpuinfo cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split()) & frozenset(CPU_FLAGS)
    return frozenset()


def bf16_unit(features: frozenset[str] | None = None) -> str | None:
    """The CPU unit that runs BF16 products (AMX tiles or AVX-512 BF16 dot products), or None."""
    features = cpu_features() if features is None else features
    if {"amx_tile", "amx_bf16"} <= features:
        return "amx_bf16"
    if "avx512_bf16" in features:
        return "avx512_bf16"
    return None


def int8_unit(features: frozenset[str] | None = None) -> str | None:
    """The CPU unit that runs INT8 products (AMX tiles or VNNI dot products), or None."""
    features = cpu_features() if features is None else features
    if {"amx_tile", "amx_int8"} <= features:
        return "amx_int8"
    return next((flag for flag in ("avx512_vnni", "avx_vnni") if flag in features), None)


def bf16_unavailable(device: str | torch.device = "cpu") -> str | None:
    """Why BF16 would not run fast on the device, or None when it does."""
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return f"this torch ({torch.__version__}) sees no CUDA device"
        if not torch.cuda.is_bf16_supported():
            name = torch.cuda.get_device_name(device)
            return f"{name} has no BF16 arithmetic (it needs compute capability 8.0 or later)"
        return None
    if bf16_unit() is None:
        return ("this CPU has neither AVX-512 BF16 nor AMX-BF16 (see /proc/cpuinfo's flags): BF16 would be "
                "emulated, slower than FP32")
    if not torch.backends.mkldnn.is_available():
        return f"this torch ({torch.__version__}) is built without oneDNN, which runs BF16 products on the CPU"
    return None
