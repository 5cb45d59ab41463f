"""KASportsFormer: the reference PyTorch model, the same network as the authors' released code.

Input [B, T, 17, 3] (x, y, confidence) in normalised screen units; output [B, T, 17, 3]
root-relative 3D poses in the same units.
"""

from __future__ import annotations

import torch
from torch import nn

from .anatomy import LimbFus, bone_features
from .config import PRESETS, ModelConfig, resolve_config
from ..errors import InputError
from .layers import Attention, GraphConv, MixerBlock
from ..keypoints.skeleton import LIMBS, NUM_JOINTS, flip

IN_CHANNELS = 3
OUT_CHANNELS = 3


class KABlock(nn.Module):
    """One layer: attention, GCN and limb cross-attention branches (each spatial then temporal),
    merged by per-token adaptive softmax weights."""

    def __init__(self, dim: int, num_heads: int, n_frames: int, neighbour_num: int = 4, mlp_ratio: float = 4.0,
                 qkv_bias: bool = False, qk_scale: float | None = None, layer_scale_init: float | None = 1e-5,
                 adaptive_fusion: bool = True, drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()

        def sub_block(mixer: nn.Module, cross: bool = False) -> MixerBlock:
            return MixerBlock(dim, mixer, mlp_ratio, layer_scale_init, cross=cross, drop=drop, drop_path=drop_path)

        def attention(mode: str, cross: bool = False) -> Attention:
            return Attention(dim, num_heads, mode, cross=cross, qkv_bias=qkv_bias, qk_scale=qk_scale,
                             attn_drop=attn_drop, proj_drop=drop)

        self.attn_spatial = sub_block(attention("spatial"))
        self.attn_temporal = sub_block(attention("temporal"))
        self.gcn_spatial = sub_block(GraphConv(dim, "spatial", NUM_JOINTS, neighbour_num))
        self.gcn_temporal = sub_block(GraphConv(dim, "temporal", n_frames, neighbour_num))
        self.cross_spatial = sub_block(attention("spatial", cross=True), cross=True)
        self.cross_temporal = sub_block(attention("temporal", cross=True), cross=True)
        self.fusion = nn.Linear(3 * dim, 3) if adaptive_fusion else None
        if self.fusion is not None:
            nn.init.zeros_(self.fusion.weight)
            nn.init.constant_(self.fusion.bias, 1.0 / 3.0)

    def forward(self, x: torch.Tensor, limbs: torch.Tensor, cross_input: torch.Tensor) -> torch.Tensor:
        a = self.attn_temporal(self.attn_spatial(x))
        g = self.gcn_temporal(self.gcn_spatial(x))
        c = self.cross_temporal(self.cross_spatial(cross_input, limbs), limbs)
        return merge_branches(a, g, c, self.fusion)


def merge_branches(a: torch.Tensor, g: torch.Tensor, c: torch.Tensor, fusion: nn.Linear | None) -> torch.Tensor:
    """Adaptive fusion: per-token softmax weights over the three branches (their mean without it)."""
    if fusion is None:
        return (a + g + c) / 3
    alpha_a, alpha_g, alpha_c = fusion(torch.cat([a, g, c], dim=-1)).softmax(dim=-1).split(1, dim=-1)
    return a * alpha_a + g * alpha_g + c * alpha_c


class Head(nn.Module):
    """LayerNorm -> Linear(d, dim_rep) -> Tanh -> Linear(dim_rep, 3)."""

    def __init__(self, dim: int, dim_rep: int, out_channels: int = OUT_CHANNELS):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, dim_rep)
        self.act = nn.Tanh()
        self.out = nn.Linear(dim_rep, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.fc(self.norm(x))))


class KASportsFormer(nn.Module):
    def __init__(self, config: ModelConfig = PRESETS["paper"]):
        super().__init__()
        self.config = config
        d = config.dim_feat
        self.limb_fus = LimbFus(LIMBS, config.limb_hidden_dim)
        self.joint_embed = nn.Linear(IN_CHANNELS, d)
        self.bone_embed = nn.Linear(IN_CHANNELS, d)
        self.limb_embed = nn.Linear(IN_CHANNELS, d)
        self.joint_pos = nn.Parameter(torch.zeros(1, NUM_JOINTS, d))
        self.bone_pos = nn.Parameter(torch.zeros(1, NUM_JOINTS, d))
        self.limb_pos = nn.Parameter(torch.zeros(1, NUM_JOINTS, d))
        self.blocks = nn.ModuleList([
            KABlock(d, config.num_heads, config.n_frames, config.neighbour_num, config.mlp_ratio, config.qkv_bias,
                    config.qk_scale, config.layer_scale_init_value if config.use_layer_scale else None,
                    config.use_adaptive_fusion, config.drop, config.attn_drop, config.drop_path)
            for _ in range(config.n_layers)
        ])
        self.head = Head(d, config.dim_rep)

    def embed(self, keypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three embedded streams: joints, bones (BoneExt) and limbs (LimbFus)."""
        bones = bone_features(keypoints)
        limbs = self.limb_fus(bones if self.config.limb_input == "bones" else keypoints)
        return (self.joint_embed(keypoints) + self.joint_pos,
                self.bone_embed(bones) + self.bone_pos,
                self.limb_embed(limbs) + self.limb_pos)

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        check_keypoints(keypoints, self.config.n_frames)
        x, bones, limbs = self.embed(keypoints)
        for index, block in enumerate(self.blocks):
            # Layer 0's cross-attention branch starts from the bone stream; later layers from x.
            x = block(x, limbs, bones if index == 0 else x)
        return self.head(x)


def build_model(config: ModelConfig | str = "paper") -> KASportsFormer:
    """A freshly initialised model from a config, a preset name or a YAML path."""
    return KASportsFormer(resolve_config(config))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _tracing() -> bool:
    """Tracing, exporting or capturing a CUDA graph: no data-dependent checks (they would sync)."""
    return (torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()
            or (torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()))


def check_keypoints(keypoints: torch.Tensor, n_frames: int) -> None:
    """Raise InputError unless keypoints is a finite floating [B, n_frames, 17, 3] tensor."""
    if not isinstance(keypoints, torch.Tensor):
        raise InputError(f"keypoints must be a torch.Tensor, got {type(keypoints).__name__}")
    if not keypoints.is_floating_point():
        raise InputError(f"keypoints must be floating point, got {keypoints.dtype}")
    shape = tuple(keypoints.shape)
    if len(shape) != 4:
        raise InputError(f"keypoints must have 4 dimensions [batch, {n_frames}, {NUM_JOINTS}, {IN_CHANNELS}], "
                         f"got shape {list(shape)}")
    _, frames, joints, channels = shape
    if joints != NUM_JOINTS:
        raise InputError(f"keypoints must have {NUM_JOINTS} joints (Human3.6M order) on axis 2, got {joints}")
    if channels != IN_CHANNELS:
        raise InputError(f"keypoints must have {IN_CHANNELS} channels (x, y, confidence) on axis 3, got {channels}")
    if frames != n_frames:
        raise InputError(f"this model was built for clips of {n_frames} frames, got {frames} "
                         "(the temporal GCN's BatchNorm fixes the clip length)")
    if not _tracing() and not bool(torch.isfinite(keypoints).all()):
        bad = (~torch.isfinite(keypoints)).nonzero()[0].tolist()
        raise InputError(f"keypoints contain NaN or Inf (first at index {bad}); mark missing joints with "
                         "confidence 0 and finite coordinates instead")


def example_keypoints(batch: int, n_frames: int, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """Keypoints of the model's input shape with confidence 1: at the origin, or uniform in [-1, 1]
    (normalised screen units) from a generator. For warm-ups, example inputs of exports and timing."""
    keypoints = torch.zeros(batch, n_frames, NUM_JOINTS, IN_CHANNELS, device=device)
    if generator is not None:
        keypoints[..., :2] = torch.rand(batch, n_frames, NUM_JOINTS, 2, generator=generator).to(device) * 2 - 1
    keypoints[..., 2] = 1.0
    return keypoints


def predict_with_flip(model: nn.Module, keypoints: torch.Tensor) -> torch.Tensor:
    """Test-time flip: the mean of f(x) and flip(f(flip(x)))."""
    return (model(keypoints) + flip(model(flip(keypoints)))) / 2
