"""27-frame clips: cutting sequences, screen normalisation, root-relative targets.

Clips follow the authors' (MotionBERT) rule: within each sequence, windows of T frames every
`stride` frames (9 for training, 27 for testing); a sequence shorter than T is resampled to T
frames; frames after the last full window are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping

import numpy as np
import torch

from ..errors import DataError
from ..model.normalization import normalize_screen, to_millimetres
from ..keypoints.skeleton import ROOT
from .source import Frames

TRAIN_STRIDE = 9
TEST_STRIDE = 27


def resample_indices(length: int, n_frames: int) -> np.ndarray:
    """Evenly spread n_frames indices over a sequence of `length` frames (repeats when shorter)."""
    return np.floor(np.linspace(0, length, num=n_frames, endpoint=False)).astype(np.int64)


def sequence_bounds(source: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive frames with the same sequence id."""
    if len(source) == 0:
        return []
    change = np.flatnonzero(source[1:] != source[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(source)]])
    return list(zip(starts.tolist(), ends.tolist()))


def clip_indices(source: np.ndarray, n_frames: int, stride: int) -> np.ndarray:
    """Frame indices [M, n_frames] of every clip, sequence by sequence."""
    if n_frames < 1 or stride < 1:
        raise DataError(f"n_frames and stride must be positive, got {n_frames} and {stride}")
    clips = []
    for start, end in sequence_bounds(source):
        length = end - start
        if length < n_frames:
            clips.append(start + resample_indices(length, n_frames))
        else:
            clips.extend(start + np.arange(s, s + n_frames) for s in range(0, length - n_frames + 1, stride))
    return np.stack(clips) if clips else np.zeros((0, n_frames), dtype=np.int64)


@dataclass
class ClipSet:
    """Model-ready clips with what evaluation in millimetres needs."""

    keypoints: np.ndarray                # [M, T, 17, 3] float32 (x, y, confidence), normalised screen
    targets: np.ndarray                  # [M, T, 17, 3] float32 root-relative 3D, normalised units
    resolution: np.ndarray               # [M, 2] float32 (width, height) pixels
    source: np.ndarray                   # [M] sequence id
    action: np.ndarray                   # [M] action label ('' when unknown)
    factor: np.ndarray | None = None     # [M, T] mm per pixel
    poses_mm: np.ndarray | None = None   # [M, T, 17, 3] root-relative ground truth in mm

    def __len__(self) -> int:
        return len(self.keypoints)

    def select(self, index) -> "ClipSet":
        return ClipSet(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[index]
                          for f in fields(self)})

    def to_millimetres(self, poses: np.ndarray) -> np.ndarray:
        """Predicted normalised poses of these clips -> root-relative mm."""
        if self.factor is None:
            raise DataError("these clips carry no 2.5D factor, so they cannot be measured in mm")
        return to_millimetres(poses, self.resolution[:, 0:1], self.resolution[:, 1:2], self.factor)


def make_clips(frames: Frames, resolutions: Mapping[str, tuple[float, float]] | tuple[float, float],
               n_frames: int = 27, stride: int = TRAIN_STRIDE) -> ClipSet:
    """Cut, normalise and make root-relative. resolutions: one (W, H) for all frames, or one per
    camera_name."""
    width, height = _frame_resolution(frames, resolutions)
    keypoints = np.empty(frames.joint_2d.shape[:2] + (3,), dtype=np.float32)
    keypoints[..., :2] = normalize_screen(frames.joint_2d, width, height)
    keypoints[..., 2] = 1.0 if frames.confidence is None else frames.confidence
    targets = normalize_screen(frames.joint3d_image, width, height)
    targets[..., 2] = frames.joint3d_image[..., 2] / width[:, None] * 2
    targets -= targets[:, ROOT:ROOT + 1]
    index = clip_indices(frames.source, n_frames, stride)
    first = index[:, 0]
    poses_mm = None
    if frames.poses_mm is not None:
        poses_mm = frames.poses_mm[index] - frames.poses_mm[index][..., ROOT:ROOT + 1, :]
    return ClipSet(
        keypoints=keypoints[index], targets=targets[index],
        resolution=np.stack([width[first], height[first]], axis=-1),
        source=frames.source[first],
        action=frames.action[first] if frames.action is not None else np.full(len(index), "", dtype=str),
        factor=frames.factor[index] if frames.factor is not None else None,
        poses_mm=poses_mm,
    )


def _frame_resolution(frames: Frames, resolutions) -> tuple[np.ndarray, np.ndarray]:
    n = len(frames)
    if isinstance(resolutions, Mapping):
        if frames.camera_name is None:
            raise DataError("per-camera resolutions need the 'camera_name' key in the data")
        unknown = sorted(set(frames.camera_name.tolist()) - set(resolutions))
        if unknown:
            raise DataError(f"no image resolution known for camera(s) {', '.join(unknown)} "
                            f"(known: {', '.join(resolutions)})")
        table = np.array([resolutions[c] for c in frames.camera_name], dtype=np.float32).reshape(n, 2)
        return table[:, 0], table[:, 1]
    width, height = resolutions
    return np.full(n, width, dtype=np.float32), np.full(n, height, dtype=np.float32)


class ClipDataset(torch.utils.data.Dataset):
    """(keypoints, targets) float32 tensors per clip."""

    def __init__(self, clips: ClipSet):
        self.keypoints = torch.from_numpy(np.ascontiguousarray(clips.keypoints))
        self.targets = torch.from_numpy(np.ascontiguousarray(clips.targets))

    def __len__(self) -> int:
        return len(self.keypoints)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.keypoints[index], self.targets[index]
