"""fold_attention: the query scale and LayerScale folded into weights, attention as
MatMul-Softmax-MatMul on 4-D heads or as the ONNX Attention op on 3-D sequences."""

from __future__ import annotations

import onnx
import torch
from torch import nn

from ...model.layers import Attention, merge_heads, split_heads
from .folding import ScaledOutput, row_blocks, scaled_rows
from .precision import island, softmax
from .tokens import frame_order, sequences, temporal_order


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
            self.q = scaled_rows(attention.q, attention.scale)
        elif use_sdpa:
            self.q, self.k, self.v = row_blocks(scaled_rows(attention.qkv, attention.scale, slice(0, dim)), 3)
        else:
            self.qkv = scaled_rows(attention.qkv, attention.scale, slice(0, dim))
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
