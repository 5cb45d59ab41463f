"""Anatomy-aware inputs: BoneExt (bone extractor) and LimbFus (limb fuser).

BoneExt turns 2D joints into 17 bone tokens (16 bones plus the "ultra-bone"); LimbFus composes
groups of 2-4 members into 17 limb tokens through tiny per-channel MLPs.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import Mlp
from ..keypoints.skeleton import BONE_DISTAL, BONE_PROXIMAL, LIMBS


def bone_features(joints: torch.Tensor) -> torch.Tensor:
    """BoneExt: [..., 17, >=2] joints -> [..., 17, 3] (dir_x, dir_y, length) bone tokens.

    Bone i points from distal joint i + 1 toward its proximal joint (toward the root). A length
    of exactly 0 is replaced by 1 (no epsilon), as the trained checkpoints saw. Token 16 is the
    ultra-bone: the plain mean of the 16 unit directions (not renormalised) and of the lengths.
    """
    xy = joints[..., :2]
    vectors = xy[..., BONE_PROXIMAL, :] - xy[..., BONE_DISTAL, :]
    lengths = torch.linalg.vector_norm(vectors, dim=-1, keepdim=True)
    lengths = torch.where(lengths == 0, torch.ones_like(lengths), lengths)
    bones = torch.cat([vectors / lengths, lengths], dim=-1)
    return torch.cat([bones, bones.mean(dim=-2, keepdim=True)], dim=-2)


class LimbComposer(nn.Module):
    """One limb: three MLPs n -> hidden -> 1, one per input channel, applied across the n members."""

    def __init__(self, members: tuple[int, ...], hidden_dim: int = 16):
        super().__init__()
        self.register_buffer("members", torch.tensor(members), persistent=False)
        n = len(members)
        self.channel_mlps = nn.ModuleList([Mlp(n, hidden_dim, 1) for _ in range(3)])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        gathered = tokens.index_select(-2, self.members)  # [..., n, 3]
        return torch.cat([mlp(gathered[..., c]) for c, mlp in enumerate(self.channel_mlps)], dim=-1)


class LimbFus(nn.Module):
    """17 limb composers: [..., 17, 3] tokens -> [..., 17, 3] limb tokens (4,323 parameters)."""

    def __init__(self, limbs: tuple[tuple[int, ...], ...] = LIMBS, hidden_dim: int = 16):
        super().__init__()
        self.limbs = nn.ModuleList([LimbComposer(members, hidden_dim) for members in limbs])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.stack([limb(tokens) for limb in self.limbs], dim=-2)
