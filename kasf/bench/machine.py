"""The machine a benchmark ran on: its measured matrix-multiply peaks, one per precision (what achieved
GFLOP/s is a share of), its CPU with the units that run BF16 and INT8 products, its GPUs, and the
versions of the packages that did the work."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

import torch

from ..engines.base import cuda_event_seconds
from ..hardware import bf16_unit, cpu_features, int8_unit

VERSIONED_PACKAGES = ("torch", "onnxruntime", "onnxruntime-gpu", "onnx", "numpy", "tensorrt", "kasf")


# The dtype of the matrix products each precision's peak times, per device type (int8: int8 x int8 -> int32).
MATMUL_DTYPES = {"cpu": {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.int8},
                 "cuda": {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "int8": torch.int8}}

# The peak an engine's products are a share of, by (device type, engine precision), where it is not the
# peak of the engine's own precision: ONNX Runtime's CPU kernels run an FP16 graph upcast to FP32 (a CPU
# has no FP16 units).
PEAK_PRECISION = {("cpu", "fp16"): "fp32"}


def peak_precision(device_type: str, precision: str) -> str:
    """The precision of the matmul peak that an engine of this precision on this device type is a share of."""
    return PEAK_PRECISION.get((device_type, precision), precision)


def rate_unit(precision: str) -> str:
    """What a rate in the precision counts: integer operations for int8, floating-point ones otherwise."""
    return "GOP/s" if precision == "int8" else "GFLOP/s"


def describe_peak(peak: dict) -> str:
    """One line for a measured peak, logged and printed under the bench table: device, precision, the
    matrices, threads and unit it ran on, and the rate."""
    name = f"matmul peak on {peak['device']} ({peak['precision']}"
    if peak["gflops"] is None:
        return f"{name}): unavailable, {peak['unavailable']}"
    threads = f", {peak['threads']} thread{'s' * (peak['threads'] > 1)}" if peak["threads"] else ""
    unit = peak["unit"] or f"no {peak['precision']} unit"
    return (f"{name}, {peak['size']}x{peak['size']}{threads}, {unit}): {peak['gflops']:.0f} "
            f"{rate_unit(peak['precision'])}")


def _cpu_unit(precision: str) -> str | None:
    """The CPU instruction set that runs the precision's products (None: none made for it)."""
    if precision == "bf16":
        return bf16_unit()
    if precision == "int8":
        return int8_unit()
    if precision == "fp32":
        return next((flag for flag in ("avx512f", "avx2") if flag in cpu_features()), None)
    return None


def _product(device: torch.device, dtype: torch.dtype, size: int) -> Callable[[], torch.Tensor]:
    """One product of two random size x size matrices: torch.mm, or int8 x int8 -> int32 by torch._int_mm."""
    if dtype == torch.int8:
        a, b = (torch.randint(-128, 128, (size, size), dtype=dtype, device=device) for _ in range(2))
        return lambda: torch._int_mm(a, b)
    a, b = (torch.randn(size, size, dtype=dtype, device=device) for _ in range(2))
    return lambda: torch.mm(a, b)


def _seconds(device: torch.device, work: Callable[[], torch.Tensor]) -> float:
    """One call's time: device time by CUDA events on a GPU, wall time on the CPU."""
    if device.type == "cuda":
        return cuda_event_seconds(work)
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _best_seconds(device: torch.device, dtype: torch.dtype, size: int, repeats: int) -> float:
    """The fastest of `repeats` products after one untimed; CUDA's FP32 products in FP32, not TF32 (the
    rate an FP32 engine's products get)."""
    matmul = torch.backends.cuda.matmul   # fp32_precision: the legacy allow_tf32 raises once the new API is used
    chosen = matmul.fp32_precision
    matmul.fp32_precision = "ieee"
    try:
        work = _product(device, dtype, size)
        work()
        return min(_seconds(device, work) for _ in range(repeats))
    finally:
        matmul.fp32_precision = chosen


def matmul_peak_gflops(device: str | torch.device = "cpu", size: int | None = None, repeats: int = 5,
                       precision: str | None = None) -> dict:
    """This machine's matrix-multiply rate in a precision (by default FP32 on the CPU, FP16 on a GPU): the
    best of `repeats` products of two size x size matrices, with torch's current threads on the CPU; int8
    by torch._int_mm, so in GOP/s. A product this torch or device cannot run is a peak with gflops None
    and the reason, so that a run records it and goes on."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    precision = precision or ("fp16" if cuda else "fp32")
    size = size or (8192 if cuda else 2048)
    dtype = MATMUL_DTYPES.get(device.type, {}).get(precision)
    peak = {"device": str(device), "precision": precision,
            "dtype": None if dtype is None else str(dtype).removeprefix("torch."), "size": size,
            "threads": None if cuda else torch.get_num_threads(),
            "unit": torch.cuda.get_device_name(device) if cuda else _cpu_unit(precision), "gflops": None}
    if dtype is None:
        known = ", ".join(MATMUL_DTYPES.get(device.type, {})) or "nothing"
        return peak | {"unavailable": f"no {precision} matmul peak on {device.type}: kasf measures {known} there"}
    try:
        seconds = _best_seconds(device, dtype, size, repeats)
    except RuntimeError as err:   # e.g. torch._int_mm unsupported by this build or device
        return peak | {"unavailable": f"{type(err).__name__}: {err}"}
    return peak | {"gflops": 2 * size ** 3 / seconds / 1e9}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> list[dict]:
    if not torch.cuda.is_available():
        return []
    driver = None
    if shutil.which("nvidia-smi"):
        query = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30)
        driver = query.stdout.strip().splitlines()[0] if query.returncode == 0 and query.stdout.strip() else None
    return [{"name": torch.cuda.get_device_name(i),
             "capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
             "driver": driver, "cuda": torch.version.cuda} for i in range(torch.cuda.device_count())]


def environment() -> dict:
    """What the figures were measured on."""
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    features = cpu_features()
    return {"cpu": _cpu_model(), "cpu_features": sorted(features), "bf16_unit": bf16_unit(features),
            "int8_unit": int8_unit(features), "logical_cpus": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform(), "gpus": _gpus(),
            "versions": versions}
