"""Training losses on [B, T, 17, 3] poses: MPJPE, scale-normalised MPJPE, velocity error."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def mpjpe(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance per joint."""
    return torch.linalg.vector_norm(predicted - target, dim=-1).mean()


def n_mpjpe(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MPJPE after scaling each frame's prediction by s = sum<p, g> / sum |p|^2 (least squares)."""
    scale = (predicted * target).sum(dim=(-2, -1), keepdim=True) / predicted.square().sum(dim=(-2, -1), keepdim=True)
    return mpjpe(scale * predicted, target)


def velocity_error(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance between frame-to-frame displacements (axis 1 is time)."""
    if predicted.shape[1] < 2:
        return predicted.new_zeros(())
    return mpjpe(predicted.diff(dim=1), target.diff(dim=1))


@dataclass(frozen=True)
class LossWeights:
    mpjpe: float = 1.0
    n_mpjpe: float = 0.5
    velocity: float = 20.0


class LiftingLoss(nn.Module):
    """The paper's objective: MPJPE + 0.5 N-MPJPE + 20 velocity. Returns (total, parts)."""

    def __init__(self, weights: LossWeights = LossWeights()):
        super().__init__()
        self.weights = weights

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if predicted.shape != target.shape:
            raise ValueError(f"predicted {list(predicted.shape)} and target {list(target.shape)} differ in shape")
        parts = {"mpjpe": mpjpe(predicted, target), "n_mpjpe": n_mpjpe(predicted, target),
                 "velocity": velocity_error(predicted, target)}
        total = sum(getattr(self.weights, name) * value for name, value in parts.items())
        return total, parts
