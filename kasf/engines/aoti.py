"""AOTInductor backend: a `kasf export --aoti` package (.pt2), the same compiled library the C++
runtime loads through libtorch, run here through torch._inductor.aoti_load_package. FP32 or BF16,
as the package's metadata says (FP32 keypoints in and poses out either way)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, KasfError
from ..export.aoti import PRECISIONS
from ..export.artifact import decode_metadata, recorded_model, require_metadata
from ..hardware import bf16_unavailable
from .base import Engine
from .variants import ModelFiles, Variant, skipped

HOW = "`kasf export --aoti`"


def package_precision(values: dict, path: str | Path) -> str:
    """The precision the package was compiled in: its kasf_precision (earlier releases wrote
    "fp32", or nothing)."""
    precision = values.get("kasf_precision", "fp32")
    if precision not in PRECISIONS:
        raise KasfError(f"{path} records precision {precision!r}; this kasf runs {' and '.join(PRECISIONS)} "
                        "packages: upgrade kasf or export it again with `kasf export --aoti`")
    return precision


def read_package_metadata(path: str | Path) -> tuple[object, dict[str, str]]:
    """(the loaded package, its metadata), or a KasfError saying why the file is not a usable
    kasf package."""
    try:
        package = torch._inductor.aoti_load_package(str(path))
    except Exception as err:  # torch raises RuntimeError, zipfile errors, OSError... for a bad package
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise KasfError(f"{path} is not a loadable AOTInductor package ({first_line}): export it again with "
                        "`kasf export --aoti`") from None
    values = package.get_metadata()
    require_metadata(values, path, HOW, keys=("kasf_metadata_version", "kasf_model_config"))
    return package, {**values, **decode_metadata(values, str(path))}


class AotiEngine(Engine):
    backend = "aoti"

    def __init__(self, path: str | Path, threads: int | None = None):
        """threads: torch's intra-op (OpenMP) threads, which the compiled code uses; process-wide."""
        self.path = Path(path)
        self.package, self.values = read_package_metadata(self.path)
        if threads is not None:
            torch.set_num_threads(threads)
        self.device = torch.device(self.values.get("AOTI_DEVICE_KEY", "cpu"))
        self.max_batch = int(self.values["kasf_max_batch"])
        super().__init__(int(self.values["kasf_n_frames"]), package_precision(self.values, self.path))

    @torch.no_grad()
    def _infer(self, keypoints: torch.Tensor) -> np.ndarray:
        if len(keypoints) > self.max_batch:
            raise InputError(f"batch {len(keypoints)} is larger than {self.path.name} was compiled for "
                             f"({self.max_batch}): export it again with a larger --max-batch")
        return self.package(keypoints.to(self.device)).cpu().numpy()

    @classmethod
    def recorded_model(cls, path: Path, config=None) -> tuple[dict, dict]:
        return recorded_model(read_package_metadata(path)[1], path, HOW)

    @classmethod
    def variants(cls, files: ModelFiles) -> list[Variant]:
        """CPU packages in FP32 and BF16 (skipped where the CPU would emulate BF16): candidates only, since
        each costs a compile of minutes."""
        reasons = {"fp32": None, "bf16": bf16_unavailable("cpu")}
        return [Variant(f"aoti {p} cpu", cls.backend, p, "cpu", None, role="candidate", making="compile",
                        status=skipped(why), make=lambda p=p: files.aoti(p)) for p, why in reasons.items()]

    def metadata(self) -> dict:
        return {**super().metadata(), "path": str(self.path), "device": str(self.device),
                "cpu_isa": self.values.get("AOTI_CPU_ISA", ""), "max_batch": self.max_batch,
                "threads": torch.get_num_threads()}
