"""Screen normalisation of 2D keypoints (MotionBERT style) and the way back to millimetres.

Both image axes are divided by the width W so the aspect ratio is kept:
x' = x / W * 2 - 1, y' = y / W * 2 - H / W. 3D targets are root-relative in the same units
(depth scaled by 2 / W); the per-frame "2.5D factor" (mm per pixel) turns them into millimetres.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import InputError
from ..keypoints.skeleton import ROOT


@dataclass(frozen=True)
class ScreenNormalization:
    """What a checkpoint's inputs mean; stored inside checkpoints and exported models.
    width/height are the camera resolution the model was trained for, when it had just one."""

    scheme: str = "screen"
    width: float | None = None
    height: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ScreenNormalization":
        return cls(**values)


def _check_resolution(width, height) -> None:
    if not (np.all(np.asarray(width) > 0) and np.all(np.asarray(height) > 0)):
        raise InputError(f"image width and height must be positive, got {width} x {height}")


def normalize_screen(keypoints: np.ndarray, width, height) -> np.ndarray:
    """Pixels [..., 17, 2|3] -> normalised screen units; a confidence channel passes through."""
    _check_resolution(width, height)
    out = np.array(keypoints, dtype=np.float32, copy=True)
    width = np.asarray(width, dtype=np.float32)[..., None]
    height = np.asarray(height, dtype=np.float32)[..., None]
    out[..., 0] = out[..., 0] / width * 2 - 1
    out[..., 1] = out[..., 1] / width * 2 - height / width
    return out


def to_millimetres(poses: np.ndarray, width, height, factor) -> np.ndarray:
    """Normalised root-relative 3D poses [..., 17, 3] -> root-relative millimetres.

    width, height and factor broadcast against the leading axes (per clip or per frame).
    """
    _check_resolution(width, height)
    poses = np.array(poses, dtype=np.float64, copy=True)
    width = np.asarray(width, dtype=np.float64)[..., None, None]
    height = np.asarray(height, dtype=np.float64)[..., None, None]
    factor = np.asarray(factor, dtype=np.float64)[..., None, None]
    poses -= poses[..., ROOT:ROOT + 1, :]
    offset = np.concatenate(np.broadcast_arrays(np.ones_like(height), height / width, np.zeros_like(height)), -1)
    pixels = (poses + offset) * width / 2
    millimetres = pixels * factor
    return millimetres - millimetres[..., ROOT:ROOT + 1, :]
