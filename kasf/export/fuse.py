"""The export form of KASportsFormer, built from a trained reference model by small, named
transformations, each numerically the same as the modules it replaces:

- pack_limb_fus: the 17 limb composers (51 tiny MLPs) as one gather and two batched matmuls;
- fold_attention: the 1/sqrt(head_dim) scale into the query weights and LayerScale into the
  output projection; attention on 4-D [B*groups, heads, S, head_dim] tensors;
- fold_graph_conv: eval BatchNorm into the skeleton adjacency (spatial) or one scale-and-shift
  (temporal); the normalised skeleton adjacency a constant;
- fold_mlp: LayerScale into the MLP's second linear map.

The same modules build an FP16 graph: weights in half precision with FP32 islands where half
precision is unsafe, all listed in FP32_ISLANDS and applied through `island`.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..anatomy import LimbFus, bone_features
from ..layers import (Attention, GraphConv, LayerScale, MixerBlock, merge_heads, normalise_adjacency,
                      similarity_adjacency, split_heads)
from ..model import Head, KABlock, KASportsFormer, merge_branches

# Where an FP16 graph computes in FP32: statistics that overflow or lose precision in half, and
# the temporal graph's neighbour choice, a discrete decision that FP16 rounding could flip.
FP32_ISLANDS = (
    "bone_features",        # BoneExt: norms, exact-zero test, division
    "layer_norm",           # mean / variance over 128 channels after attention
    "softmax",              # attention and fusion weights
    "temporal_similarity",  # F F^T (can exceed 65504), TopK, >=, degree normalisation
)


def island(fn, *tensors: torch.Tensor) -> torch.Tensor:
    """Run fn in FP32 and return the result in the first tensor's dtype (a no-op in FP32)."""
    dtype = tensors[0].dtype
    return fn(*(t.float() for t in tensors)).to(dtype)


def softmax(scores: torch.Tensor) -> torch.Tensor:
    return scores.softmax(dim=-1)


def _scale(layer_scale: nn.Module) -> torch.Tensor | None:
    return layer_scale.gamma.detach() if isinstance(layer_scale, LayerScale) else None


class FusedLayerNorm(nn.Module):
    def __init__(self, norm: nn.LayerNorm):
        super().__init__()
        self.eps = norm.eps
        self.register_buffer("weight", norm.weight.detach().clone())
        self.register_buffer("bias", norm.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return island(lambda t: F.layer_norm(t, t.shape[-1:], self.weight.float(), self.bias.float(), self.eps), x)


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


class FusedAttention(nn.Module):
    """Attention with the query scale in the query weights and LayerScale in the projection."""

    def __init__(self, attention: Attention, layer_scale: torch.Tensor | None, use_sdpa: bool = False):
        super().__init__()
        self.mode, self.num_heads, self.use_sdpa = attention.mode, attention.num_heads, use_sdpa
        self.cross = hasattr(attention, "q")
        dim = attention.proj.in_features
        if self.cross:
            self.q = _scaled_linear(attention.q, attention.scale, rows=dim)
            self.kv = copy.deepcopy(attention.kv)
        else:
            self.qkv = _scaled_linear(attention.qkv, attention.scale, rows=dim)
        self.proj = copy.deepcopy(attention.proj)
        if layer_scale is not None:
            with torch.no_grad():
                self.proj.weight.mul_(layer_scale[:, None])
                self.proj.bias.mul_(layer_scale)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if self.cross:
            (q,) = split_heads(self.q(x), 1, self.num_heads, self.mode)
            k, v = split_heads(self.kv(context), 2, self.num_heads, self.mode)
        else:
            q, k, v = split_heads(self.qkv(x), 3, self.num_heads, self.mode)
        if self.use_sdpa:
            out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        else:
            out = island(softmax, q @ k.transpose(-1, -2)) @ v
        return self.proj(merge_heads(out, x.shape, self.mode))


def _scaled_linear(linear: nn.Linear, scale: float, rows: int) -> nn.Linear:
    """A copy of linear whose first `rows` outputs (the queries) are multiplied by scale."""
    fused = copy.deepcopy(linear)
    with torch.no_grad():
        fused.weight[:rows] *= scale
        if fused.bias is not None:
            fused.bias[:rows] *= scale
    return fused


class FusedGraphConv(nn.Module):
    """ReLU(x + BN(A @ V(x) + U(x))) with eval BatchNorm folded; LayerScale applied after."""

    def __init__(self, gcn: GraphConv, layer_scale: torch.Tensor | None):
        super().__init__()
        self.mode, self.neighbour_num = gcn.mode, gcn.neighbour_num
        bn = gcn.bn
        scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
        shift = (bn.bias - bn.running_mean * scale).detach()
        self.uv = nn.Linear(gcn.U.in_features, 2 * gcn.U.out_features)
        with torch.no_grad():
            self.uv.weight.copy_(torch.cat([gcn.U.weight, gcn.V.weight]))
            self.uv.bias.copy_(torch.cat([gcn.U.bias, gcn.V.bias]))
        if self.mode == "spatial":
            self.register_buffer("adjacency", scale[:, None] * gcn.skeleton_adjacency)
        self.register_buffer("node_scale", scale[:, None])
        self.register_buffer("node_shift", shift[:, None])
        self.register_buffer("layer_scale", layer_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # On 4-D tensors: the node axis is joints (spatial) or, after one transpose, frames.
        nodes = x if self.mode == "spatial" else x.transpose(1, 2)
        u, v = self.uv(nodes).chunk(2, dim=-1)
        if self.mode == "spatial":
            mixed = self.adjacency @ v + u * self.node_scale
        else:
            adjacency = island(lambda n: normalise_adjacency(similarity_adjacency(n, self.neighbour_num)), nodes)
            mixed = (adjacency @ v + u) * self.node_scale
        out = torch.relu(nodes + mixed + self.node_shift)
        if self.layer_scale is not None:  # a ReLU output: LayerScale cannot move into a weight
            out = out * self.layer_scale
        return out if self.mode == "spatial" else out.transpose(1, 2)


class FusedMlp(nn.Module):
    def __init__(self, fc1: nn.Linear, fc2: nn.Linear, layer_scale: torch.Tensor | None):
        super().__init__()
        self.fc1, self.fc2 = copy.deepcopy(fc1), copy.deepcopy(fc2)
        if layer_scale is not None:
            with torch.no_grad():
                self.fc2.weight.mul_(layer_scale[:, None])
                self.fc2.bias.mul_(layer_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class FusedMixerBlock(nn.Module):
    """x + mixer(LN1(x)[, LN_context(context)]); x + MLP(LN2(x)); LayerScale already folded."""

    def __init__(self, block: MixerBlock, use_sdpa: bool):
        super().__init__()
        self.norm1 = FusedLayerNorm(block.norm1)
        self.norm_context = FusedLayerNorm(block.norm_context) if block.norm_context is not None else None
        gamma1 = _scale(block.ls1)
        if isinstance(block.mixer, Attention):
            self.mixer = FusedAttention(block.mixer, gamma1, use_sdpa)
        else:
            self.mixer = FusedGraphConv(block.mixer, gamma1)
        self.norm2 = FusedLayerNorm(block.norm2)
        self.mlp = FusedMlp(block.mlp.fc1, block.mlp.fc2, _scale(block.ls2))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if self.norm_context is None:
            x = x + self.mixer(self.norm1(x))
        else:
            x = x + self.mixer(self.norm1(x), self.norm_context(context))
        return x + self.mlp(self.norm2(x))


class FusedBlock(nn.Module):
    def __init__(self, block: KABlock, use_sdpa: bool):
        super().__init__()
        names = ("attn_spatial", "attn_temporal", "gcn_spatial", "gcn_temporal", "cross_spatial", "cross_temporal")
        for name in names:
            setattr(self, name, FusedMixerBlock(getattr(block, name), use_sdpa))
        self.fusion = copy.deepcopy(block.fusion)

    def forward(self, x: torch.Tensor, limbs: torch.Tensor, cross_input: torch.Tensor) -> torch.Tensor:
        a = self.attn_temporal(self.attn_spatial(x))
        g = self.gcn_temporal(self.gcn_spatial(x))
        c = self.cross_temporal(self.cross_spatial(cross_input, limbs), limbs)
        return merge_branches(a, g, c, self.fusion, lambda scores: island(softmax, scores))


class FusedHead(nn.Module):
    def __init__(self, head: Head):
        super().__init__()
        self.norm = FusedLayerNorm(head.norm)
        self.fc, self.out = copy.deepcopy(head.fc), copy.deepcopy(head.out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.fc(self.norm(x))))


class FusedKASportsFormer(nn.Module):
    """Inference-only KASportsFormer for export: FP32 keypoints in, FP32 poses out, whatever
    precision the weights are in. No input checks: the graph is checked by its runtime."""

    def __init__(self, model: KASportsFormer, use_sdpa: bool = False):
        super().__init__()
        model = model.eval()
        self.config = model.config
        self.limb_from_bones = model.config.limb_input == "bones"
        self.limb_fus = PackedLimbFus(model.limb_fus)
        self.joint_embed = copy.deepcopy(model.joint_embed)
        self.bone_embed = copy.deepcopy(model.bone_embed)
        self.limb_embed = copy.deepcopy(model.limb_embed)
        for name in ("joint_pos", "bone_pos", "limb_pos"):
            self.register_buffer(name, getattr(model, name).detach().clone())
        self.blocks = nn.ModuleList([FusedBlock(block, use_sdpa) for block in model.blocks])
        self.head = FusedHead(model.head)

    @property
    def dtype(self) -> torch.dtype:
        return self.joint_pos.dtype

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        bones = bone_features(keypoints).to(self.dtype)
        joints = keypoints.to(self.dtype)
        limbs = self.limb_fus(bones if self.limb_from_bones else joints)
        x = self.joint_embed(joints) + self.joint_pos
        bones = self.bone_embed(bones) + self.bone_pos
        limbs = self.limb_embed(limbs) + self.limb_pos
        for index, block in enumerate(self.blocks):
            x = block(x, limbs, bones if index == 0 else x)
        return self.head(x).float()


def fuse(model: KASportsFormer, half: bool = False, use_sdpa: bool = False) -> FusedKASportsFormer:
    """The export form of a reference model; half=True stores weights in FP16 (islands stay FP32)."""
    fused = FusedKASportsFormer(model, use_sdpa).eval()
    for parameter in fused.parameters():
        parameter.requires_grad_(False)
    return fused.half() if half else fused
