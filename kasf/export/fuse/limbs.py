"""The limb stream's rewrites: the 17 limb composers packed into batched matmuls (pack_limb_fus),
and the keys and values of every cross-attention computed once from the limb tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...model.anatomy import LimbFus
from ...model.kasportsformer import KABlock
from ...model.layers import MixerBlock, split_heads
from .tokens import sequences, temporal_order


class PackedLimbFus(nn.Module):
    """All limbs at once: gather the 55 members, then per channel one block-diagonal
    [55 -> 17 * hidden] matmul, GELU, and one block-diagonal [17 * hidden -> 17] matmul."""

    def __init__(self, limb_fus: LimbFus):
        super().__init__()
        limbs = list(limb_fus.limbs)
        hidden = limbs[0].channel_mlps[0].fc1.out_features
        members = torch.cat([limb.members for limb in limbs])
        n_limbs, n_members = len(limbs), len(members)
        w1 = torch.zeros(3, n_members, n_limbs * hidden)
        b1 = torch.zeros(3, 1, n_limbs * hidden)
        w2 = torch.zeros(3, n_limbs * hidden, n_limbs)
        b2 = torch.zeros(3, 1, n_limbs)
        offset = 0
        for index, limb in enumerate(limbs):
            rows, cols = slice(offset, offset + len(limb.members)), slice(index * hidden, (index + 1) * hidden)
            for channel, mlp in enumerate(limb.channel_mlps):
                w1[channel, rows, cols] = mlp.fc1.weight.detach().T
                b1[channel, 0, cols] = mlp.fc1.bias.detach()
                w2[channel, cols, index] = mlp.fc2.weight.detach()[0]
                b2[channel, 0, index] = mlp.fc2.bias.detach()[0]
            offset += len(limb.members)
        self.register_buffer("members", members)
        for name, value in (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2)):
            self.register_buffer(name, value)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, t = tokens.shape[:2]
        gathered = tokens.index_select(2, self.members).transpose(2, 3).reshape(b * t, 3, 1, -1)
        hidden = F.gelu(gathered @ self.w1 + self.b1)
        return (hidden @ self.w2 + self.b2).reshape(b, t, 3, -1).transpose(2, 3)


class LimbContext(nn.Module):
    """Keys and values of every cross-attention in the model, from the limb tokens at once.

    Each cross-attention normalises the same limb tokens with its own LayerNorm: the statistics
    are shared, and the affine part folds into that mixer's K/V weights. The K/V maps of all
    layers then stack into one Linear per mode, whose output splits into heads in one go."""

    def __init__(self, blocks: list[KABlock], n_frames: int, use_sdpa: bool = False):
        super().__init__()
        norms = [getattr(block, name).norm_context for block in blocks for name in ("cross_spatial", "cross_temporal")]
        if len({norm.eps for norm in norms}) != 1:
            raise ValueError("the cross-attention LayerNorms must share one eps to share their statistics")
        self.eps, self.n_frames, self.use_sdpa = norms[0].eps, n_frames, use_sdpa
        self.num_heads = blocks[0].cross_spatial.mixer.num_heads
        self.spatial = self._stacked([block.cross_spatial for block in blocks])
        self.temporal = self._stacked([block.cross_temporal for block in blocks])

    @staticmethod
    def _stacked(sub_blocks: list[MixerBlock]) -> nn.Linear:
        weights, biases = [], []
        for sub_block in sub_blocks:
            norm, kv = sub_block.norm_context, sub_block.mixer.kv
            weights.append(kv.weight.detach() * norm.weight.detach())
            bias = kv.weight.detach() @ norm.bias.detach()
            biases.append(bias + kv.bias.detach() if kv.bias is not None else bias)
        stacked = nn.Linear(weights[0].shape[1], sum(len(w) for w in weights))
        with torch.no_grad():
            stacked.weight.copy_(torch.cat(weights))
            stacked.bias.copy_(torch.cat(biases))
        return stacked

    def forward(self, limbs: torch.Tensor) -> list[tuple[tuple[torch.Tensor, torch.Tensor], ...]]:
        """Per layer: ((k, v) spatial, (k, v) temporal), each in its attention's input form."""
        normalised = F.layer_norm(limbs, limbs.shape[-1:], eps=self.eps).to(self.spatial.weight.dtype)
        per_mode = []
        for mode, stacked in (("spatial", self.spatial), ("temporal", self.temporal)):
            parts = stacked.out_features // stacked.in_features
            if self.use_sdpa:
                rows = normalised if mode == "spatial" else temporal_order(normalised, self.n_frames)
                inputs = sequences(stacked(rows), mode, self.n_frames).chunk(parts, dim=-1)
            else:
                inputs = split_heads(stacked(normalised), parts, self.num_heads, mode, self.n_frames)
            per_mode.append(list(zip(inputs[0::2], inputs[1::2])))
        return list(zip(*per_mode))
