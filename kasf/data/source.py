"""Reader for the authors' prepared source pickles (SportsPose, WorldPose) and anything written
in the same format (kasf's embedded motion capture).

data[split] holds per-frame arrays: joint_2d [N, 17, 2] pixels, confidence [N, 17] (absent for
ground-truth 2D), joint3d_image [N, 17, 3], source [N] (sequence id), camera_name [N]
(SportsPose); evaluation splits also action [N], 2.5d_factor [N] and joints_2.5d_image [N, 17, 3]
(mm). Every array is checked on reading; a problem is reported with the split and key it is in.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import DataError
from ..keypoints.skeleton import NUM_JOINTS

# Subjects and games the paper tests on.
SPORTSPOSE_TEST_SUBJECTS = ("S2", "S4", "S7", "S10", "S16", "S21", "S22")
WORLDPOSE_TEST_GAMES = (
    "ARG_CRO_221657", "ARG_CRO_222132", "ARG_CRO_223805", "ARG_CRO_235121", "ARG_FRA_180702", "ARG_FRA_183429",
    "ARG_FRA_193158", "BRA_KOR_221807", "BRA_KOR_232126", "BRA_KOR_224459", "CRO_MOR_181141", "CRO_MOR_182854",
    "CRO_MOR_184559", "CRO_MOR_194948", "ENG_FRA_224248", "ENG_FRA_233519", "ENG_FRA_232015", "ENG_FRA_235059",
    "FRA_MOR_232451", "FRA_MOR_222923", "MOR_POR_181952", "MOR_POR_192030", "MOR_POR_184724", "NET_ARG_220032",
    "NET_ARG_231259", "NET_ARG_222749",
)


@dataclass
class Frames:
    """One split of a source file, frame by frame."""

    joint_2d: np.ndarray                   # [N, 17, 2] float32 pixels
    joint3d_image: np.ndarray              # [N, 17, 3] float32 (u, v pixels; depth in pixel units)
    source: np.ndarray                     # [N] sequence id
    confidence: np.ndarray | None = None   # [N, 17] in [0, 1]; None for ground-truth 2D
    camera_name: np.ndarray | None = None  # [N]
    action: np.ndarray | None = None       # [N]
    factor: np.ndarray | None = None       # [N] mm per pixel ("2.5d_factor")
    poses_mm: np.ndarray | None = None     # [N, 17, 3] mm ("joints_2.5d_image")

    def __len__(self) -> int:
        return len(self.source)

    def select(self, mask: np.ndarray) -> "Frames":
        return Frames(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[mask]
                         for f in fields(self)})

    @staticmethod
    def concatenate(parts: list["Frames"]) -> "Frames":
        values = {}
        for f in fields(Frames):
            arrays = [getattr(p, f.name) for p in parts]
            values[f.name] = None if any(a is None for a in arrays) else np.concatenate(arrays)
        return Frames(**values)


# Pickle key -> (Frames field, trailing shape, numeric)
_KEYS = {
    "joint_2d": ("joint_2d", (NUM_JOINTS, 2), True),
    "joint3d_image": ("joint3d_image", (NUM_JOINTS, 3), True),
    "source": ("source", (), False),
    "confidence": ("confidence", (NUM_JOINTS,), True),
    "camera_name": ("camera_name", (), False),
    "action": ("action", (), False),
    "2.5d_factor": ("factor", (), True),
    "joints_2.5d_image": ("poses_mm", (NUM_JOINTS, 3), True),
}
REQUIRED = ("joint_2d", "joint3d_image", "source")
REQUIRED_FOR_EVALUATION = ("action", "2.5d_factor", "joints_2.5d_image")


def load_pickle(path: str | Path) -> Mapping[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    try:
        with open(path, "rb") as handle:
            data = pickle.load(handle)
    except Exception as err:  # a truncated or foreign file raises anything from EOFError to UnpicklingError
        raise DataError(f"{path} is not a readable pickle (truncated or another kind of file): {err}") from None
    if not isinstance(data, Mapping):
        raise DataError(f"{path} must hold a dict of splits, found {type(data).__name__}")
    return data


def parse_split(data: Mapping[str, Any], split: str, origin: str = "data", evaluation: bool = False) -> Frames:
    """Check and convert data[split]; evaluation=True also requires the mm ground truth."""
    if split not in data:
        raise DataError(f"{origin} has no '{split}' split (it has: {', '.join(map(str, data)) or 'nothing'})")
    raw = data[split]
    if not isinstance(raw, Mapping):
        raise DataError(f"{origin}['{split}'] must be a dict of arrays, found {type(raw).__name__}")
    for key in REQUIRED + (REQUIRED_FOR_EVALUATION if evaluation else ()):
        if key not in raw:
            raise DataError(f"{origin}['{split}'] lacks the key '{key}'")
    values: dict[str, np.ndarray] = {}
    count = None
    for key, (name, trailing, numeric) in _KEYS.items():
        if key not in raw:
            continue
        array = np.asarray(raw[key])
        where = f"{origin}['{split}']['{key}']"
        if array.ndim == 0 or array.shape[1:] != trailing:
            expected = ", ".join(["N", *map(str, trailing)])
            raise DataError(f"{where} has shape {list(array.shape)}, expected [{expected}]")
        if count is None:
            count = len(array)
        elif len(array) != count:
            raise DataError(f"{where} has {len(array)} entries but '{REQUIRED[0]}' has {count}: lengths must match")
        if numeric:
            if not np.issubdtype(array.dtype, np.number):
                raise DataError(f"{where} must be numeric, found {array.dtype}")
            array = array.astype(np.float32)
            if not np.isfinite(array).all():
                raise DataError(f"{where} contains NaN or Inf (first at frame {int(np.argwhere(~np.isfinite(array))[0][0])})")
        else:
            array = array.astype(str)
        values[name] = array
    if count == 0:
        raise DataError(f"{origin}['{split}'] is empty")
    if "confidence" in values and ((values["confidence"] < 0) | (values["confidence"] > 1)).any():
        raise DataError(f"{origin}['{split}']['confidence'] must lie in [0, 1]")
    if "factor" in values and (values["factor"] <= 0).any():
        raise DataError(f"{origin}['{split}']['2.5d_factor'] must be positive")
    return Frames(**values)


def read_source(path: str | Path, split: str, evaluation: bool = False) -> Frames:
    """One split of an authors'-format pickle, checked."""
    return parse_split(load_pickle(path), split, str(path), evaluation)


def published_test_source(dataset: str, source: str) -> bool:
    """Whether a sequence id belongs to the paper's test split (SportsPose subjects, WorldPose games)."""
    if dataset == "sportspose":
        subjects = "|".join(s[1:] for s in SPORTSPOSE_TEST_SUBJECTS)
        return re.search(rf"(?<![A-Za-z0-9])S0*({subjects})(?![0-9])", source) is not None
    if dataset == "worldpose":
        return any(game in source for game in WORLDPOSE_TEST_GAMES)
    raise DataError(f"no published test split for dataset '{dataset}' (known: sportspose, worldpose)")
