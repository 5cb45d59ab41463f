"""Flip augmentation for training: mirror input and label together, per sample."""

from __future__ import annotations

import torch

from ..keypoints.skeleton import flip


def random_flip(keypoints: torch.Tensor, poses: torch.Tensor, prob: float = 0.5,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror each sample of a batch with probability prob (keypoints and 3D poses together)."""
    chosen = torch.rand(keypoints.shape[0], generator=generator, device=keypoints.device) < prob
    mask = chosen.view(-1, *([1] * (keypoints.dim() - 1)))
    return torch.where(mask, flip(keypoints), keypoints), torch.where(mask, flip(poses), poses)
