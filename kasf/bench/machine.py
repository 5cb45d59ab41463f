"""The machine a benchmark ran on: its measured matrix-multiply peak (what achieved GFLOP/s is a
share of), its CPU and GPUs, and the versions of the packages that did the work."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

import torch

from ..engines.base import cuda_event_seconds

VERSIONED_PACKAGES = ("torch", "onnxruntime", "onnxruntime-gpu", "onnx", "numpy", "tensorrt", "kasf")


def matmul_peak_gflops(device: str | torch.device = "cpu", size: int | None = None, repeats: int = 5) -> dict:
    """This machine's matrix-multiply rate: FP32 sgemm on the CPU (with torch's current threads),
    FP16 on a GPU; the best of `repeats` products of two size x size matrices."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    size = size or (8192 if cuda else 2048)
    dtype = torch.float16 if cuda else torch.float32
    a, b = (torch.randn(size, size, dtype=dtype, device=device) for _ in range(2))
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        if cuda:
            best = min(best, cuda_event_seconds(lambda: torch.mm(a, b)))
        else:
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
    return {"device": str(device), "dtype": str(dtype).removeprefix("torch."), "size": size,
            "threads": None if cuda else torch.get_num_threads(), "gflops": 2 * size ** 3 / best / 1e9}


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
    return {"cpu": _cpu_model(), "logical_cpus": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform(), "gpus": _gpus(),
            "versions": versions}
