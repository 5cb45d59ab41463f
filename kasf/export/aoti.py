"""AOTInductor packages (.pt2) of the fused model: compiled ahead of time by PyTorch's Inductor
into a shared library that runs without Python, from libtorch (kasf's C++ runtime) or from
`torch._inductor.aoti_load_package` (kasf's aoti backend).

The package runs on the device it was compiled for, and on the CPU only with the instruction
set of the machine that compiled it (its metadata names both). kasf's metadata rides in the
package's own metadata, as strings: the same keys as an ONNX export's, plus the two the C++
runtime reads without a JSON parser (kasf_n_frames, kasf_max_batch).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..model.checkpoint import Checkpoint, build_from_checkpoint
from ..files import atomic_write
from .fuse import fuse
from .artifact import ExportError, check_max_batch, check_output_path, example_input, file_metadata

SUFFIX = ".pt2"
DEVICES = ("cpu", "cuda")


@dataclass
class AotiExport:
    path: Path
    size_bytes: int
    device: str
    max_batch: int


def aoti_metadata(checkpoint: Checkpoint, max_batch: int) -> dict[str, str]:
    return {**file_metadata(checkpoint, "fp32"), "kasf_n_frames": str(checkpoint.config.n_frames),
            "kasf_max_batch": str(max_batch)}


def export_aoti(checkpoint: Checkpoint, path: str | Path, max_batch: int = 1024, device: str = "cpu") -> AotiExport:
    """Fuse, torch.export with a dynamic batch axis, compile with AOTInductor, package atomically.
    FP32: on the CPU that is what runs fast; an FP16 deployment is TensorRT's job."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ExportError(f"an AOTInductor package is a {SUFFIX} file, got {path.name}")
    check_output_path(path)
    check_max_batch(max_batch)
    if device not in DEVICES:
        raise ExportError(f"AOTInductor compiles for {' or '.join(DEVICES)}, got device {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ExportError(f"compiling for CUDA needs a CUDA device, and this torch ({torch.__version__}) sees none")
    module = fuse(build_from_checkpoint(checkpoint)).eval().to(device)
    example = example_input(checkpoint.config).to(device)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    logging.getLogger("torch._inductor").setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(module, (example,), dynamic_shapes={"keypoints": {0: batch}})
        configs = {"aot_inductor.metadata": aoti_metadata(checkpoint, max_batch)}
        atomic_write(path, lambda tmp: torch._inductor.aoti_compile_and_package(
            program, package_path=str(tmp), inductor_configs=configs), suffix=SUFFIX)
    return AotiExport(path, path.stat().st_size, device, max_batch)
