"""The export form of KASportsFormer, built from a trained reference model by small, named
transformations, each numerically the same as the modules it replaces:

- flattened tokens: the running stream is a [B * T * J, C] matrix, so every biased linear map is
  one Gemm and the mixers reshape it to the view they need;
- pack_limb_fus (PackedLimbFus): the 17 limb composers (51 tiny MLPs) as one gather and two
  batched matmuls;
- embeddings with the spatial positional embedding folded into a per-joint bias;
- limb context (LimbContext): the limb tokens are the same in every layer, so their LayerNorm
  statistics are computed once, each cross-attention's LayerNorm affine is folded into its K/V
  weights, and the K/V of all layers come from two matmuls (spatial and temporal heads);
- fold_attention (FusedAttention): the 1/sqrt(head_dim) scale into the query weights and
  LayerScale into the output projection; attention as MatMul-Softmax-MatMul on 4-D
  [B*groups, heads, S, head_dim], or as the ONNX Attention op on 3-D [B*groups, S, C] with the heads
  an attribute (no head transposes in the graph, and separate Q, K, V maps: no Split copies);
  in FP16 LayerScale stays a multiply: trained gammas are ~1e-4, and folded into weights of
  ~0.05 they give subnormal FP16 weights (below 6.1e-5) that lose precision or flush to zero;
- fold_graph_conv (SkeletonGraphConv, SimilarityGraphConv): eval BatchNorm into the skeleton
  adjacency and one constant (spatial) or one scale-and-shift (temporal);
- fold_mlp (FusedMlp): LayerScale into the MLP's second linear map.

The same modules build an FP16 graph: the matmuls, attention, GCNs and MLPs in half precision,
FP32 where half precision is unsafe, all listed in FP32_ISLANDS: the FP32 modules are named in
FP32_MODULES, the rest is applied through `island` or kept as the FP32 token stream.
"""

from __future__ import annotations

import copy

import onnx
import torch
import torch.nn.functional as F
from torch import nn

from ..model.anatomy import LimbFus, bone_features
from ..model.layers import Attention, GraphConv, LayerScale, MixerBlock, merge_heads, split_heads
from ..model.kasportsformer import Head, KABlock, KASportsFormer
from ..model.skeleton import NUM_JOINTS

# Where an FP16 graph computes in FP32: statistics that overflow or lose precision in half, and
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


def _gamma(layer_scale: nn.Module) -> torch.Tensor | None:
    return layer_scale.gamma.detach() if isinstance(layer_scale, LayerScale) else None


class ScaledOutput(nn.Module):
    """A linear map followed by LayerScale: folded into its rows (fold=True), or kept as a
    multiply where folding would make half-precision weights subnormal."""

    def __init__(self, linear: nn.Linear, layer_scale: torch.Tensor | None, fold: bool):
        super().__init__()
        folded = fold and layer_scale is not None
        self.linear = _scaled_rows(linear, layer_scale) if folded else copy.deepcopy(linear)
        self.register_buffer("layer_scale", None if folded else layer_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)
        return out if self.layer_scale is None else out * self.layer_scale


def _scaled_rows(linear: nn.Linear, scale: torch.Tensor | float, rows: slice = slice(None)) -> nn.Linear:
    """A copy of linear whose output rows (all, or a slice) are multiplied by scale."""
    scaled = copy.deepcopy(linear)
    with torch.no_grad():
        scaled.weight[rows] *= scale[:, None] if isinstance(scale, torch.Tensor) else scale
        if scaled.bias is not None:
            scaled.bias[rows] *= scale
    return scaled


def _row_blocks(linear: nn.Linear, parts: int) -> list[nn.Linear]:
    """linear's output rows as `parts` linear maps of equal width."""
    biases = linear.bias.detach().chunk(parts) if linear.bias is not None else [None] * parts
    blocks = []
    for weight, bias in zip(linear.weight.detach().chunk(parts), biases):
        block = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        with torch.no_grad():
            block.weight.copy_(weight)
            if bias is not None:
                block.bias.copy_(bias)
        blocks.append(block)
    return blocks


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


class PositionalEmbedding(nn.Module):
    """Linear(3 -> C) plus the spatial positional embedding, folded into one [J, C] bias;
    [B, T, J, 3] in, flattened tokens [B * T * J, C] out."""

    def __init__(self, linear: nn.Linear, position: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", linear.weight.detach().T.clone())
        self.register_buffer("bias", (linear.bias.detach() + position.detach()[0]).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.weight + self.bias).reshape(-1, self.bias.shape[-1])


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


class FusedAttention(nn.Module):
    """Attention on flattened tokens with the query scale in the query weights and LayerScale in
    the projection. Cross-attention takes its keys and values ready-made (LimbContext)."""

    def __init__(self, attention: Attention, layer_scale: torch.Tensor | None, n_frames: int,
                 use_sdpa: bool = False, fold_layer_scale: bool = True):
        super().__init__()
        self.mode, self.num_heads, self.n_frames, self.use_sdpa = attention.mode, attention.num_heads, n_frames, use_sdpa
        self.cross = hasattr(attention, "q")
        dim = attention.proj.in_features
        if self.cross:
            self.q = _scaled_rows(attention.q, attention.scale)
        elif use_sdpa:
            self.q, self.k, self.v = _row_blocks(_scaled_rows(attention.qkv, attention.scale, slice(0, dim)), 3)
        else:
            self.qkv = _scaled_rows(attention.qkv, attention.scale, slice(0, dim))
        self.proj = ScaledOutput(attention.proj, layer_scale, fold_layer_scale)

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        if self.use_sdpa:
            return self._attention_op(x, kv)
        if self.cross:
            (q,) = split_heads(self.q(x), 1, self.num_heads, self.mode, self.n_frames)
            k, v = kv
        else:
            q, k, v = split_heads(self.qkv(x), 3, self.num_heads, self.mode, self.n_frames)
        out = island(softmax, q @ k.transpose(-1, -2)) @ v
        return self.proj(merge_heads(out, self.mode, self.n_frames))

    def _attention_op(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """The ONNX Attention op on 3-D sequences, heads an attribute: no head transposes, and one
        Gemm per map, so no Split copies Q, K and V apart."""
        temporal = self.mode == "temporal"
        rows = temporal_order(x, self.n_frames) if temporal else x
        maps = (self.q,) if self.cross else (self.q, self.k, self.v)
        q, k, v = tuple(sequences(linear(rows), self.mode, self.n_frames) for linear in maps) + (kv or ())
        # Softmax in FP32 whatever the inputs' precision (an FP32 island of the FP16 graph).
        out = torch.onnx.ops.attention(q, k, v, q_num_heads=self.num_heads, kv_num_heads=self.num_heads, scale=1.0,
                                       softmax_precision=onnx.TensorProto.FLOAT)[0]
        out = self.proj(out.reshape(rows.shape))
        return frame_order(out, self.n_frames) if temporal else out


def _batchnorm_scale_shift(gcn: GraphConv) -> tuple[torch.Tensor, torch.Tensor]:
    bn = gcn.bn
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    return scale, (bn.bias - bn.running_mean * scale).detach()


class SkeletonGraphConv(nn.Module):
    """Spatial GCN, ReLU(x + BN(A @ V(x) + U(x))), as one linear map and one node-mixing matmul.

    BN(A @ V(x) + U(x)) = [s * A | diag(s)] @ [V'(x); U'(x)] + c with V', U' the bias-free maps
    and c a [J, C] constant. V' and U' are one matmul whose output, read as [2J, C] per frame,
    interleaves V'(x)_j and U'(x)_j, so the mixing matrix's columns are interleaved to match."""

    def __init__(self, gcn: GraphConv, layer_scale: torch.Tensor | None):
        super().__init__()
        scale, shift = _batchnorm_scale_shift(gcn)
        adjacency = scale[:, None] * gcn.skeleton_adjacency
        joints, dim = adjacency.shape[0], gcn.U.in_features
        mixing = torch.zeros(joints, 2 * joints)
        mixing[:, 0::2] = adjacency
        mixing[:, 1::2] = torch.diag(scale)
        constant = (adjacency.sum(dim=1, keepdim=True) * gcn.V.bias.detach() + scale[:, None] * gcn.U.bias.detach()
                    + shift[:, None])
        self.vu = nn.Linear(dim, 2 * dim, bias=False)
        with torch.no_grad():
            self.vu.weight.copy_(torch.cat([gcn.V.weight, gcn.U.weight]))
        self.register_buffer("mixing", mixing)
        self.register_buffer("constant", constant)
        self.register_buffer("layer_scale", layer_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = x.shape[-1]
        mixed = (self.mixing @ self.vu(x).reshape(-1, 2 * NUM_JOINTS, dim) + self.constant).reshape(-1, dim)
        out = torch.relu(x + mixed)
        return out if self.layer_scale is None else out * self.layer_scale  # after a ReLU: not foldable


class SimilarityGraphConv(nn.Module):
    """Temporal GCN on each joint's T frames: ReLU(x + BN(A_hat @ V(x) + U(x))) with the
    K-nearest similarity graph, A_hat @ v computed as d * (A @ (d * v)) (d = degree^-1/2, so the
    normalised adjacency is never built) and eval BatchNorm as one scale-and-shift per frame.
    U and V are two Gemms on the rows in joint order (one would need a Split to copy them apart)."""

    def __init__(self, gcn: GraphConv, layer_scale: torch.Tensor | None, n_frames: int):
        super().__init__()
        self.neighbour_num, self.n_frames = gcn.neighbour_num, n_frames
        scale, shift = _batchnorm_scale_shift(gcn)
        self.U, self.V = copy.deepcopy(gcn.U), copy.deepcopy(gcn.V)
        self.register_buffer("frame_scale", scale[:, None])
        self.register_buffer("frame_shift", shift[:, None])
        self.register_buffer("layer_scale", layer_scale)

    def neighbours(self, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The binary K-nearest graph and degree^-1/2 of each frame (the reference's
        similarity_adjacency and normalise_adjacency, without building A_hat)."""
        similarity = nodes @ nodes.transpose(-1, -2)
        threshold = similarity.topk(self.neighbour_num, dim=-1).values[..., -1:]
        adjacency = (similarity >= threshold).to(nodes.dtype)
        return adjacency, adjacency.sum(dim=-1, keepdim=True).pow(-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = x.shape[-1]
        nodes = x.reshape(-1, self.n_frames, NUM_JOINTS, dim).transpose(1, 2)
        rows = nodes.reshape(-1, dim)
        u, v = (linear(rows).reshape(nodes.shape) for linear in (self.U, self.V))
        adjacency, inv_sqrt_degree = island(self.neighbours, nodes)
        mixed = (inv_sqrt_degree * (adjacency @ (inv_sqrt_degree * v)) + u) * self.frame_scale
        out = torch.relu(nodes + mixed + self.frame_shift)
        if self.layer_scale is not None:
            out = out * self.layer_scale
        return out.transpose(1, 2).reshape(-1, dim)


class FusedMlp(nn.Module):
    def __init__(self, fc1: nn.Linear, fc2: nn.Linear, layer_scale: torch.Tensor | None, fold_layer_scale: bool = True):
        super().__init__()
        self.fc1 = copy.deepcopy(fc1)
        self.fc2 = ScaledOutput(fc2, layer_scale, fold_layer_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def fused_mixer(mixer: nn.Module, layer_scale: torch.Tensor | None, n_frames: int, use_sdpa: bool,
                fold_layer_scale: bool) -> nn.Module:
    if isinstance(mixer, Attention):
        return FusedAttention(mixer, layer_scale, n_frames, use_sdpa, fold_layer_scale)
    if mixer.mode == "spatial":
        return SkeletonGraphConv(mixer, layer_scale)
    return SimilarityGraphConv(mixer, layer_scale, n_frames)


class FusedMixerBlock(nn.Module):
    """x + mixer(LN1(x)[, kv]); x + MLP(LN2(x)); LayerScale already folded."""

    def __init__(self, block: MixerBlock, n_frames: int, use_sdpa: bool, fold_layer_scale: bool):
        super().__init__()
        self.norm1 = FusedLayerNorm(block.norm1)
        self.mixer = fused_mixer(block.mixer, _gamma(block.ls1), n_frames, use_sdpa, fold_layer_scale)
        self.norm2 = FusedLayerNorm(block.norm2)
        self.mlp = FusedMlp(block.mlp.fc1, block.mlp.fc2, _gamma(block.ls2), fold_layer_scale)

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        normed = self.norm1(x)
        x = x + (self.mixer(normed) if kv is None else self.mixer(normed, kv)).to(x.dtype)
        return x + self.mlp(self.norm2(x)).to(x.dtype)


class BranchFusion(nn.Module):
    """Adaptive fusion on flattened tokens: softmax weights over the three branches from one
    Gemm on their concatenation, applied as one multiply and one sum (their mean without it)."""

    def __init__(self, fusion: nn.Linear | None):
        super().__init__()
        self.fusion = copy.deepcopy(fusion)

    def forward(self, a: torch.Tensor, g: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if self.fusion is None:
            return (a + g + c) / 3
        branches = torch.cat([a, g, c], dim=-1)
        weights = softmax(self.fusion(branches.to(self.fusion.weight.dtype)).to(branches.dtype))
        return (branches.reshape(-1, 3, a.shape[-1]) * weights.unsqueeze(-1)).sum(dim=1)


class FusedBlock(nn.Module):
    def __init__(self, block: KABlock, n_frames: int, use_sdpa: bool, fold_layer_scale: bool):
        super().__init__()
        names = ("attn_spatial", "attn_temporal", "gcn_spatial", "gcn_temporal", "cross_spatial", "cross_temporal")
        for name in names:
            setattr(self, name, FusedMixerBlock(getattr(block, name), n_frames, use_sdpa, fold_layer_scale))
        self.fusion = BranchFusion(block.fusion)

    def forward(self, x: torch.Tensor, limb_kv, cross_input: torch.Tensor) -> torch.Tensor:
        spatial_kv, temporal_kv = limb_kv
        a = self.attn_temporal(self.attn_spatial(x))
        g = self.gcn_temporal(self.gcn_spatial(x))
        c = self.cross_temporal(self.cross_spatial(cross_input, spatial_kv), temporal_kv)
        return self.fusion(a, g, c)


class FusedHead(nn.Module):
    def __init__(self, head: Head, n_frames: int):
        super().__init__()
        self.n_frames = n_frames
        self.norm = FusedLayerNorm(head.norm)
        self.fc, self.out = copy.deepcopy(head.fc), copy.deepcopy(head.out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        poses = self.out(torch.tanh(self.fc(self.norm(x))).to(self.out.weight.dtype))
        return poses.reshape(-1, self.n_frames, NUM_JOINTS, poses.shape[-1])


class FusedKASportsFormer(nn.Module):
    """Inference-only KASportsFormer for export: FP32 keypoints in, FP32 poses out, whatever
    precision the weights are in. No input checks: the graph is checked by its runtime."""

    def __init__(self, model: KASportsFormer, use_sdpa: bool = False, fold_layer_scale: bool = True):
        super().__init__()
        model = model.eval()
        self.config = model.config
        n_frames = model.config.n_frames
        self.limb_from_bones = model.config.limb_input == "bones"
        self.limb_fus = PackedLimbFus(model.limb_fus)
        self.joint_embed = PositionalEmbedding(model.joint_embed, model.joint_pos)
        self.bone_embed = PositionalEmbedding(model.bone_embed, model.bone_pos)
        self.limb_embed = PositionalEmbedding(model.limb_embed, model.limb_pos)
        self.limb_context = LimbContext(list(model.blocks), n_frames, use_sdpa)
        self.blocks = nn.ModuleList([FusedBlock(block, n_frames, use_sdpa, fold_layer_scale) for block in model.blocks])
        self.head = FusedHead(model.head, n_frames)

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        bones = bone_features(keypoints)
        limbs = self.limb_fus(bones if self.limb_from_bones else keypoints)
        limb_kv = self.limb_context(self.limb_embed(limbs))
        x = self.joint_embed(keypoints)
        bones = self.bone_embed(bones)
        for index, (block, kv) in enumerate(zip(self.blocks, limb_kv)):
            x = block(x, kv, bones if index == 0 else x)
        return self.head(x)


def fuse(model: KASportsFormer, half: bool = False, use_sdpa: bool = False) -> FusedKASportsFormer:
    """The export form of a reference model; half=True stores weights in FP16 (islands stay FP32)."""
    fused = FusedKASportsFormer(model, use_sdpa, fold_layer_scale=not half).eval()
    for parameter in fused.parameters():
        parameter.requires_grad_(False)
    if half:
        fused.half()
        for name in FP32_MODULES:
            fused.get_submodule(name).float()
    return fused
