"""Reference points for accuracy tables: what a lifter must beat to be worth its cost."""

from __future__ import annotations

import torch
from torch import nn

from ..data.clips import ClipSet
from ..keypoints.skeleton import NUM_JOINTS


class MeanPose(nn.Module):
    """Predicts the mean training pose in every frame, whatever the input."""

    def __init__(self, mean_pose: torch.Tensor):
        super().__init__()
        self.register_buffer("mean_pose", mean_pose.reshape(NUM_JOINTS, 3).float())

    @classmethod
    def from_clips(cls, clips: ClipSet) -> "MeanPose":
        return cls(torch.from_numpy(clips.targets.reshape(-1, NUM_JOINTS, 3).mean(axis=0)))

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        return self.mean_pose.expand(*keypoints.shape[:2], NUM_JOINTS, 3)


class FrameMLP(nn.Module):
    """Per-frame lifter without temporal context (Martinez et al. 2017): one frame's 17 keypoints
    -> Linear -> residual blocks of (Linear, BatchNorm, ReLU, Dropout) x 2 -> that frame's 3D pose."""

    def __init__(self, hidden: int = 1024, blocks: int = 2, dropout: float = 0.25):
        super().__init__()
        self.inp = nn.Linear(NUM_JOINTS * 3, hidden)
        self.blocks = nn.ModuleList([
            nn.Sequential(*[layer for _ in range(2) for layer in
                            (nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout))])
            for _ in range(blocks)
        ])
        self.out = nn.Linear(hidden, NUM_JOINTS * 3)

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        b, t = keypoints.shape[:2]
        x = self.inp(keypoints.reshape(b * t, -1))
        for block in self.blocks:
            x = x + block(x)
        return self.out(x).reshape(b, t, NUM_JOINTS, 3)
