"""Flattened tokens: the running stream is a [B * T * J, C] matrix (every biased linear map one
Gemm), and these reshapes give each mixer the view it needs."""

from __future__ import annotations

import torch

from ...keypoints.skeleton import NUM_JOINTS


def temporal_order(tokens: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Flattened tokens from frame order [B, T, J] to joint order [B, J, T]: one transpose."""
    dim = tokens.shape[-1]
    return tokens.reshape(-1, n_frames, NUM_JOINTS, dim).transpose(1, 2).reshape(-1, dim)


def frame_order(rows: torch.Tensor, n_frames: int) -> torch.Tensor:
    """The inverse of temporal_order."""
    dim = rows.shape[-1]
    return rows.reshape(-1, NUM_JOINTS, n_frames, dim).transpose(1, 2).reshape(-1, dim)


def sequences(rows: torch.Tensor, mode: str, n_frames: int) -> torch.Tensor:
    """Rows grouped by sequence (temporal_order's when temporal) -> the Attention op's 3-D input
    [groups, sequence, channels]: a reshape."""
    return rows.reshape(-1, NUM_JOINTS if mode == "spatial" else n_frames, rows.shape[-1])
