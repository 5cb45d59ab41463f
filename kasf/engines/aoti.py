"""AOTInductor backend: a `kasf export --aoti` package (.pt2), the same compiled library the C++
runtime loads through libtorch, run here through torch._inductor.aoti_load_package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, KasfError
from ..export.artifact import decode_metadata, recorded_model, require_metadata
from .base import Engine

HOW = "`kasf export --aoti`"


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
        super().__init__(int(self.values["kasf_n_frames"]), "fp32")

    @torch.no_grad()
    def _infer(self, keypoints: torch.Tensor) -> np.ndarray:
        if len(keypoints) > self.max_batch:
            raise InputError(f"batch {len(keypoints)} is larger than {self.path.name} was compiled for "
                             f"({self.max_batch}): export it again with a larger --max-batch")
        return self.package(keypoints.to(self.device)).cpu().numpy()

    @classmethod
    def recorded_model(cls, path: Path, config=None) -> tuple[dict, dict]:
        return recorded_model(read_package_metadata(path)[1], path, HOW)

    def metadata(self) -> dict:
        return {**super().metadata(), "path": str(self.path), "device": str(self.device),
                "cpu_isa": self.values.get("AOTI_CPU_ISA", ""), "max_batch": self.max_batch,
                "threads": torch.get_num_threads()}
