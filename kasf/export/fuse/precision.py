"""Where the FP16 or BF16 form stays FP32, and the pieces that keep it there (FP32_ISLANDS)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Where an FP16 or BF16 graph computes in FP32: statistics that overflow or lose precision in half, and
# the temporal graph's neighbour choice, a discrete decision that FP16 rounding could flip.
FP32_ISLANDS = (
    "input_embeddings",     # keypoints in [-1, 1] round to ~0.5 px in FP16: LimbFus and the three
                            # 3 -> C embeddings (a negligible share of the compute) stay FP32
    "bone_features",        # BoneExt: norms, exact-zero test, division
    "residual_stream",      # LayerScale keeps branch updates ~1e-4 of the stream: below FP16's
                            # resolution of it, so the running tokens and their sums stay FP32
    "layer_norm",           # mean / variance over 128 channels after attention
    "softmax",              # attention and fusion weights
    "temporal_similarity",  # F F^T (can exceed 65504), TopK, >=, node degrees
    "pose_output",          # the head's last map (dim_rep -> 3): poses round to ~0.2 mm in FP16
)
FP32_MODULES = ("limb_fus", "joint_embed", "bone_embed", "limb_embed", "head.out")


def island(fn, *tensors: torch.Tensor):
    """Run fn in FP32 and return its result(s) in the first tensor's dtype (a no-op in FP32)."""
    dtype = tensors[0].dtype
    out = fn(*(t.float() for t in tensors))
    return tuple(o.to(dtype) for o in out) if isinstance(out, tuple) else out.to(dtype)


def softmax(scores: torch.Tensor) -> torch.Tensor:
    return scores.softmax(dim=-1)


class FusedLayerNorm(nn.Module):
    """LayerNorm of the FP32 token stream, computed in FP32, returned in the compute dtype."""

    def __init__(self, norm: nn.LayerNorm):
        super().__init__()
        self.eps = norm.eps
        self.register_buffer("weight", norm.weight.detach().clone())
        self.register_buffer("bias", norm.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = F.layer_norm(x.float(), x.shape[-1:], self.weight.float(), self.bias.float(), self.eps)
        return normed.to(self.weight.dtype)
