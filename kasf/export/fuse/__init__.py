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
  BF16 has FP32's range and would not need it, but keeps the multiply too, so that both reduced
  precisions are one form;
- fold_graph_conv (SkeletonGraphConv, SimilarityGraphConv): eval BatchNorm into the skeleton
  adjacency and one constant (spatial) or one scale-and-shift (temporal);
- fold_mlp (FusedMlp): LayerScale into the MLP's second linear map.

The same modules build an FP16 or BF16 form: the matmuls, attention, GCNs and MLPs in the reduced
precision, FP32 where it is unsafe, all listed in FP32_ISLANDS: the FP32 modules are named in
FP32_MODULES, the rest is applied through `island` or kept as the FP32 token stream.

Each kind of rewrite is one module: tokens, limbs, folding, attention, graph_conv, precision;
network assembles them and fuse() below builds the whole.
"""

from __future__ import annotations

import torch

from ...errors import KasfError
from ...model.kasportsformer import KASportsFormer
from .attention import FusedAttention
from .folding import FusedMlp, PositionalEmbedding, ScaledOutput
from .graph_conv import SimilarityGraphConv, SkeletonGraphConv
from .limbs import LimbContext, PackedLimbFus
from .network import BranchFusion, FusedBlock, FusedHead, FusedKASportsFormer, FusedMixerBlock, fused_mixer
from .precision import FP32_ISLANDS, FP32_MODULES, FusedLayerNorm, island, softmax
from .tokens import frame_order, sequences, temporal_order

__all__ = ["FP32_ISLANDS", "FP32_MODULES", "BranchFusion", "FusedAttention", "FusedBlock", "FusedHead",
           "FusedKASportsFormer", "FusedLayerNorm", "FusedMixerBlock", "FusedMlp", "LimbContext", "PackedLimbFus",
           "PositionalEmbedding", "ScaledOutput", "SimilarityGraphConv", "SkeletonGraphConv", "frame_order", "fuse",
           "fused_mixer", "island", "sequences", "softmax", "temporal_order"]

DTYPES = (torch.float32, torch.float16, torch.bfloat16)   # the weights' precisions fuse() builds


def fuse(model: KASportsFormer, dtype: torch.dtype = torch.float32, use_sdpa: bool = False) -> FusedKASportsFormer:
    """The export form of a reference model, its weights in dtype: FP32, or FP16 or BF16 with the
    FP32 islands kept in FP32 (FP32 keypoints in and poses out whichever)."""
    if dtype not in DTYPES:
        raise KasfError(f"the export form's weights are {', '.join(map(str, DTYPES))}, not {dtype}")
    reduced = dtype != torch.float32
    fused = FusedKASportsFormer(model, use_sdpa, fold_layer_scale=not reduced).eval()
    for parameter in fused.parameters():
        parameter.requires_grad_(False)
    if reduced:
        fused.to(dtype)
        for name in FP32_MODULES:
            fused.get_submodule(name).float()
    return fused
