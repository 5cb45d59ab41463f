"""Training losses on [B, T, 17, 3] poses: MPJPE, scale-normalised MPJPE, velocity error, each a
mean over frames that may weight some frames more (a low-latency model's focus)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError


def mpjpe(predicted: torch.Tensor, target: torch.Tensor, frame_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean Euclidean distance per joint; frame_weights [T] (mean 1) weight the frames of axis 1."""
    distances = torch.linalg.vector_norm(predicted - target, dim=-1)
    if frame_weights is None:
        return distances.mean()
    return (distances.mean(dim=-1) * frame_weights.to(distances)).mean()


def n_mpjpe(predicted: torch.Tensor, target: torch.Tensor, frame_weights: torch.Tensor | None = None) -> torch.Tensor:
    """MPJPE after scaling each frame's prediction by s = sum<p, g> / sum |p|^2 (least squares)."""
    scale = (predicted * target).sum(dim=(-2, -1), keepdim=True) / predicted.square().sum(dim=(-2, -1), keepdim=True)
    return mpjpe(scale * predicted, target, frame_weights)


def velocity_error(predicted: torch.Tensor, target: torch.Tensor,
                   frame_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean Euclidean distance between frame-to-frame displacements (axis 1 is time); a
    displacement takes the weight of the frame it ends at."""
    if predicted.shape[1] < 2:
        return predicted.new_zeros(())
    weights = None if frame_weights is None else frame_weights[1:] / frame_weights[1:].mean()
    return mpjpe(predicted.diff(dim=1), target.diff(dim=1), weights)


def focus_weights(n_frames: int, lag: int, stride: int, weight: float) -> torch.Tensor:
    """Frame weights [n_frames], mean 1, that count the window positions a runtime with this lag
    and stride returns (n-1-lag-stride+1 .. n-1-lag) `weight` times as much as the others."""
    if not (lag >= 0 and stride >= 1 and lag + stride <= n_frames and weight > 0):
        raise ConfigError(f"focus lag {lag}, stride {stride}, weight {weight}: need lag >= 0, stride >= 1, "
                         f"lag + stride <= {n_frames} and a positive weight")
    weights = torch.ones(n_frames)
    weights[n_frames - lag - stride:n_frames - lag] = weight
    return weights / weights.mean()


@dataclass(frozen=True)
class LossWeights:
    mpjpe: float = 1.0
    n_mpjpe: float = 0.5
    velocity: float = 20.0


class LiftingLoss(nn.Module):
    """The paper's objective: MPJPE + 0.5 N-MPJPE + 20 velocity. Returns (total, parts)."""

    def __init__(self, weights: LossWeights = LossWeights(), frame_weights: torch.Tensor | None = None):
        """frame_weights [T] (focus_weights): weight some window positions more; None: all alike."""
        super().__init__()
        self.weights, self.frame_weights = weights, frame_weights

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if predicted.shape != target.shape:
            raise ValueError(f"predicted {list(predicted.shape)} and target {list(target.shape)} differ in shape")
        frames = self.frame_weights
        parts = {"mpjpe": mpjpe(predicted, target, frames), "n_mpjpe": n_mpjpe(predicted, target, frames),
                 "velocity": velocity_error(predicted, target, frames)}
        total = sum(getattr(self.weights, name) * value for name, value in parts.items())
        return total, parts
