"""Building blocks of KASportsFormer, each used by the model in spatial mode (over the 17 joints
of a frame) and in temporal mode (over the T frames of one joint). Tensors are [B, T, J, C]."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..keypoints.skeleton import NUM_JOINTS, adjacency

AXES = ("spatial", "temporal")   # what a layer mixes over: the joints of a frame, or the frames of a joint


class Mlp(nn.Module):
    """Linear -> GELU -> Linear, with optional dropout after each Linear."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class LayerScale(nn.Module):
    """Per-channel learnable scale of a residual branch (CaiT)."""

    def __init__(self, dim: int, init_value: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per sample while training."""

    def __init__(self, prob: float):
        super().__init__()
        self.prob = prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.prob == 0.0:
            return x
        keep = 1.0 - self.prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


def _check_mode(mode: str) -> str:
    if mode not in AXES:
        raise ValueError(f"mode must be one of {AXES}, got {mode!r}")
    return mode


class Attention(nn.Module):
    """Multi-head attention; self-attention, or cross-attention from stream tokens (queries) to
    context tokens (keys and values) when built with cross=True.

    Spatial: each frame's 17 queries attend to that frame's 17 keys. Temporal: for each joint
    index, the T queries attend to that index's T keys.
    """

    def __init__(self, dim: int, num_heads: int, mode: str, cross: bool = False, qkv_bias: bool = False,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.mode = _check_mode(mode)
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.attn_drop = attn_drop
        if cross:
            self.q = nn.Linear(dim, dim, bias=qkv_bias)
            self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        else:
            self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        frames = x.shape[1]
        if context is None:
            q, k, v = split_heads(self.qkv(x), 3, self.num_heads, self.mode, frames)
        else:
            (q,) = split_heads(self.q(x), 1, self.num_heads, self.mode, frames)
            k, v = split_heads(self.kv(context), 2, self.num_heads, self.mode, frames)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0, scale=self.scale)
        return self.proj_drop(self.proj(merge_heads(out, self.mode, frames).reshape(x.shape)))


def split_heads(x: torch.Tensor, parts: int, num_heads: int, mode: str, n_frames: int) -> tuple[torch.Tensor, ...]:
    """Tokens [B, T, J, parts * C] (or flattened [B * T * J, parts * C]) -> parts x
    [B * groups, heads, sequence, head_dim]: 4-D, as fused attention kernels and exporters want
    (groups: frames when spatial, joints when temporal). The parts are split last, so the whole
    rearrangement is one chain of reshapes and one transpose whatever the number of parts."""
    channels = x.shape[-1] // (parts * num_heads)
    if mode == "spatial":
        x = x.reshape(-1, NUM_JOINTS, parts * num_heads, channels).transpose(1, 2)
    else:
        x = x.reshape(-1, n_frames, NUM_JOINTS, parts * num_heads, channels).permute(0, 2, 3, 1, 4)
        x = x.reshape(-1, parts * num_heads, n_frames, channels)
    return x.split(num_heads, dim=1) if parts > 1 else (x,)


def merge_heads(out: torch.Tensor, mode: str, n_frames: int) -> torch.Tensor:
    """The inverse of split_heads for one part: [B * groups, heads, sequence, head_dim] ->
    flattened tokens [B * T * J, heads * head_dim]."""
    heads, channels = out.shape[1], out.shape[3]
    if mode == "spatial":
        out = out.transpose(1, 2)
    else:
        out = out.reshape(-1, NUM_JOINTS, heads, n_frames, channels).permute(0, 3, 1, 2, 4)
    return out.reshape(-1, heads * channels)


def normalise_adjacency(adj: torch.Tensor) -> torch.Tensor:
    """D^-1/2 A D^-1/2 with D the row sums of A."""
    inv_sqrt_degree = adj.sum(dim=-1).pow(-0.5)
    return inv_sqrt_degree.unsqueeze(-1) * adj * inv_sqrt_degree.unsqueeze(-2)


def similarity_adjacency(nodes: torch.Tensor, k: int) -> torch.Tensor:
    """Per sequence, link frame i to every frame j whose feature similarity F_i . F_j is at least
    the k-th largest of row i. Binary, not symmetrised. nodes: [..., T, C] -> [..., T, T]."""
    similarity = nodes @ nodes.transpose(-1, -2)
    threshold = similarity.topk(k, dim=-1).values[..., -1:]
    return (similarity >= threshold).to(nodes.dtype)


class GraphConv(nn.Module):
    """GCN mixer: ReLU(x + BN(A_hat @ V(x) + U(x))).

    Spatial: the fixed skeleton graph over the 17 joints. Temporal: a K-nearest similarity graph
    over the T frames of each joint, rebuilt every forward pass. BatchNorm normalises per node,
    so the temporal mixer is tied to the T it was built with.
    """

    def __init__(self, dim: int, mode: str, num_nodes: int, neighbour_num: int = 4):
        super().__init__()
        self.mode = _check_mode(mode)
        self.neighbour_num = neighbour_num
        self.U = nn.Linear(dim, dim)
        self.V = nn.Linear(dim, dim)
        self.bn = nn.BatchNorm1d(num_nodes)
        nn.init.normal_(self.U.weight, 0.0, math.sqrt(2.0 / dim))
        nn.init.normal_(self.V.weight, 0.0, math.sqrt(2.0 / dim))
        if self.mode == "spatial":
            skeleton = normalise_adjacency(torch.from_numpy(adjacency()))
            self.register_buffer("skeleton_adjacency", skeleton, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, j, c = x.shape
        if self.mode == "spatial":
            nodes = x.reshape(b * t, j, c)
            adj = self.skeleton_adjacency
        else:
            nodes = x.transpose(1, 2).reshape(b * j, t, c)
            adj = normalise_adjacency(similarity_adjacency(nodes, self.neighbour_num))
        out = torch.relu(nodes + self.bn(adj @ self.V(nodes) + self.U(nodes)))
        if self.mode == "spatial":
            return out.reshape(b, t, j, c)
        return out.reshape(b, j, t, c).transpose(1, 2)


class MixerBlock(nn.Module):
    """Pre-norm MetaFormer sub-block around a token mixer:
    x = x + g1 * mixer(LN1(x) [, LN_context(context)]);  x = x + g2 * MLP(LN2(x)).
    A cross-attention mixer gets the context tokens through their own LayerNorm."""

    def __init__(self, dim: int, mixer: nn.Module, mlp_ratio: float = 4.0, layer_scale_init: float | None = 1e-5,
                 cross: bool = False, drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim) if cross else None
        self.mixer = mixer
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dim, drop)
        self.ls1 = LayerScale(dim, layer_scale_init) if layer_scale_init is not None else nn.Identity()
        self.ls2 = LayerScale(dim, layer_scale_init) if layer_scale_init is not None else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if self.norm_context is None:
            mixed = self.mixer(self.norm1(x))
        else:
            mixed = self.mixer(self.norm1(x), self.norm_context(context))
        x = x + self.drop_path(self.ls1(mixed))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))
