"""AOTInductor packages (.pt2) of the fused model: compiled ahead of time by PyTorch's Inductor
into a shared library that runs without Python, from libtorch (kasf's C++ runtime) or from
`torch._inductor.aoti_load_package` (kasf's aoti backend).

The package runs on the device it was compiled for, and on the CPU only with the instruction
set of the machine that compiled it (its metadata names both). kasf's metadata rides in the
package's own metadata, as strings: the same keys as an ONNX export's, plus the two the C++
runtime reads without a JSON parser (kasf_n_frames, kasf_max_batch).

FP32, or BF16 where the device computes it fast (CPUs with AVX-512 BF16 or AMX, GPUs from
Ampere): the BF16 export form, its FP32 islands kept, FP32 keypoints in and poses out, so a
runtime feeds both alike. FP16 is TensorRT's job.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..hardware import bf16_unavailable
from ..model.checkpoint import Checkpoint, build_from_checkpoint
from ..files import atomic_write
from .fuse import fuse
from .artifact import ExportError, check_max_batch, check_output_path, example_input, file_metadata

SUFFIX = ".pt2"
DEVICES = ("cpu", "cuda")
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}   # a package's precision: its weights' dtype
# Compiled with Inductor's freezing (weights as constants, prepacked for oneDNN): BF16 CPU packages of
# the `small` preset run 17-19% faster at batch 1 and 11-12% at batch 8 (2 threads); FP32 ones gain
# 5-9% at batch 8 but lose 3-7% at batch 1, so FP32 is compiled as before.
FROZEN = ("bf16",)


@dataclass
class AotiExport:
    path: Path
    size_bytes: int
    device: str
    max_batch: int
    precision: str


def aoti_metadata(checkpoint: Checkpoint, max_batch: int, precision: str = "fp32") -> dict[str, str]:
    return {**file_metadata(checkpoint, precision), "kasf_n_frames": str(checkpoint.config.n_frames),
            "kasf_max_batch": str(max_batch)}


def check_target(device: str, precision: str) -> None:
    """Refuse a device or precision the package could not be compiled for here, before minutes of compiling."""
    if device not in DEVICES:
        raise ExportError(f"AOTInductor compiles for {' or '.join(DEVICES)}, got device {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ExportError(f"compiling for CUDA needs a CUDA device, and this torch ({torch.__version__}) sees none")
    if precision not in PRECISIONS:
        raise ExportError(f"AOTInductor packages are {' or '.join(PRECISIONS)}, got precision {precision!r}")
    reason = bf16_unavailable(device) if precision == "bf16" else None
    if reason:
        raise ExportError(f"a BF16 package for {device} would not run fast: {reason}; export fp32")


def export_aoti(checkpoint: Checkpoint, path: str | Path, max_batch: int = 1024, device: str = "cpu",
                precision: str = "fp32") -> AotiExport:
    """Fuse (in the precision's export form), torch.export with a dynamic batch axis, compile with
    AOTInductor, package atomically."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ExportError(f"an AOTInductor package is a {SUFFIX} file, got {path.name}")
    check_output_path(path)
    check_max_batch(max_batch)
    check_target(device, precision)
    module = fuse(build_from_checkpoint(checkpoint), PRECISIONS[precision]).eval().to(device)
    example = example_input(checkpoint.config).to(device)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    logging.getLogger("torch._inductor").setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(module, (example,), dynamic_shapes={"keypoints": {0: batch}})
        configs = {"aot_inductor.metadata": aoti_metadata(checkpoint, max_batch, precision),
                   "freezing": precision in FROZEN}
        atomic_write(path, lambda tmp: torch._inductor.aoti_compile_and_package(
            program, package_path=str(tmp), inductor_configs=configs), suffix=SUFFIX)
    return AotiExport(path, path.stat().st_size, device, max_batch, precision)
