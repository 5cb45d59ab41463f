"""Constants folded into linear maps: LayerScale into output rows (kept a multiply where FP16
weights would turn subnormal), the positional embedding into a bias, and the MLP (fold_mlp)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ...model.layers import LayerScale


def layer_scale_gamma(layer_scale: nn.Module) -> torch.Tensor | None:
    return layer_scale.gamma.detach() if isinstance(layer_scale, LayerScale) else None


def scaled_rows(linear: nn.Linear, scale: torch.Tensor | float, rows: slice = slice(None)) -> nn.Linear:
    """A copy of linear whose output rows (all, or a slice) are multiplied by scale."""
    scaled = copy.deepcopy(linear)
    with torch.no_grad():
        scaled.weight[rows] *= scale[:, None] if isinstance(scale, torch.Tensor) else scale
        if scaled.bias is not None:
            scaled.bias[rows] *= scale
    return scaled


def row_blocks(linear: nn.Linear, parts: int) -> list[nn.Linear]:
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


class ScaledOutput(nn.Module):
    """A linear map followed by LayerScale: folded into its rows (fold=True), or kept as a
    multiply where folding would make half-precision weights subnormal."""

    def __init__(self, linear: nn.Linear, layer_scale: torch.Tensor | None, fold: bool):
        super().__init__()
        folded = fold and layer_scale is not None
        self.linear = scaled_rows(linear, layer_scale) if folded else copy.deepcopy(linear)
        self.register_buffer("layer_scale", None if folded else layer_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)
        return out if self.layer_scale is None else out * self.layer_scale


class PositionalEmbedding(nn.Module):
    """Linear(3 -> C) plus the spatial positional embedding, folded into one [J, C] bias;
    [B, T, J, 3] in, flattened tokens [B * T * J, C] out."""

    def __init__(self, linear: nn.Linear, position: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", linear.weight.detach().T.clone())
        self.register_buffer("bias", (linear.bias.detach() + position.detach()[0]).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.weight + self.bias).reshape(-1, self.bias.shape[-1])


class FusedMlp(nn.Module):
    def __init__(self, fc1: nn.Linear, fc2: nn.Linear, layer_scale: torch.Tensor | None, fold_layer_scale: bool = True):
        super().__init__()
        self.fc1 = copy.deepcopy(fc1)
        self.fc2 = ScaledOutput(fc2, layer_scale, fold_layer_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))
