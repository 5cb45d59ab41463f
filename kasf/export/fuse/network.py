"""The fused modules assembled into the export form of the whole model: blocks of mixers, the
branch fusion, the head and FusedKASportsFormer."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ...model.anatomy import bone_features
from ...model.kasportsformer import Head, KABlock, KASportsFormer
from ...model.layers import Attention, MixerBlock
from ...keypoints.skeleton import NUM_JOINTS
from .attention import FusedAttention
from .folding import FusedMlp, PositionalEmbedding, layer_scale_gamma
from .graph_conv import SimilarityGraphConv, SkeletonGraphConv
from .limbs import LimbContext, PackedLimbFus
from .precision import FusedLayerNorm, softmax


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
        self.mixer = fused_mixer(block.mixer, layer_scale_gamma(block.ls1), n_frames, use_sdpa, fold_layer_scale)
        self.norm2 = FusedLayerNorm(block.norm2)
        self.mlp = FusedMlp(block.mlp.fc1, block.mlp.fc2, layer_scale_gamma(block.ls2), fold_layer_scale)

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
