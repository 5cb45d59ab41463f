"""The reference's own numerical noise floor: how far PyTorch FP32 moves from itself when nothing
but rounding changes, and how often its temporal GCN picks other neighbours when it does.

KASportsFormer's temporal GCN links each frame to its K most similar frames (TopK), a discrete
choice: on near-ties a rounding-level change of the input flips a neighbour and moves the output
by millimetres. An engine's deviation from the reference is only evidence of a fault where it is
larger than this floor. Two runs of the reference measure it, on the same clips:

- batch split: the clips one at a time instead of in batches (only the summation order changes);
- rounding: the standard model of floating-point arithmetic, fl(x) = x (1 + d) with |d| <= u,
  applied to the keypoints and to the weights, input and output of every linear map, with d
  drawn uniformly within its bound and u the unit roundoff of the precision the engine runs that
  map in. For FP32 this is an ulp of noise; for FP16 and BF16 it is what storing weights and
  activations in half precision around each matrix product does. INT8 rounds to a grid of the
  tensor's range instead: x + amax d, amax the largest magnitude of the tensor (of each output
  channel, for weights) and |d| <= 1/254, half a step of a symmetric 8-bit scale; an INT8
  product's weights and input, its output stays FP32 (kasf.export.quantize).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from torch import nn

from ..errors import KasfError
from ..export.fuse import FP32_MODULES
from ..export.quantize import runs_in_int8
from ..model.layers import GraphConv, similarity_adjacency

# Unit roundoff (half the spacing of numbers near 1) of each compute precision; INT8: half of one
# step of a symmetric 8-bit scale, relative to the tensor's range.
UNIT_ROUNDOFF = {"fp32": 2.0 ** -24, "bf16": 2.0 ** -8, "fp16": 2.0 ** -11, "int8": 1 / 254}


def unit_roundoff(precision: str) -> float:
    if precision not in UNIT_ROUNDOFF:
        raise KasfError(f"no rounding model for precision {precision!r} (known: {', '.join(UNIT_ROUNDOFF)})")
    return UNIT_ROUNDOFF[precision]


class NeighbourRecorder:
    """Forward hooks on the reference's temporal GCNs that record each frame's neighbour set (the
    binary similarity adjacency the layer uses), bit-packed, layer after layer."""

    def __init__(self, model: nn.Module):
        self.layers = [m for m in model.modules() if isinstance(m, GraphConv) and m.mode == "temporal"]
        self.sets: list[np.ndarray] = []

    def _record(self, module: GraphConv, inputs, output) -> None:
        (x,) = inputs
        b, t, j, c = x.shape
        adjacency = similarity_adjacency(x.transpose(1, 2).reshape(b * j, t, c), module.neighbour_num)
        self.sets.append(np.packbits(adjacency.reshape(b, j, t, t).numpy() > 0, axis=-1))

    @contextmanager
    def recording(self) -> Iterator["NeighbourRecorder"]:
        """Record the forward passes run inside (take() after each one)."""
        self.sets = []
        handles = [layer.register_forward_hook(self._record) for layer in self.layers]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def take(self) -> np.ndarray:
        """The neighbour sets of the last forward pass: [clips, layers, joints, frames, packed bytes]."""
        sets, self.sets = self.sets, []
        if not sets:
            raise KasfError("no temporal GCN ran in the last forward pass: nothing to record")
        return np.stack(sets, axis=1)


def neighbour_flips(sets: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per clip, how many (layer, joint, frame) neighbour sets differ between two runs."""
    return (sets != other).any(axis=-1).reshape(len(sets), -1).sum(axis=1)


def map_precision(name: str, precision: str) -> str:
    """The precision an engine of `precision` runs the linear map of module `name` in: FP32 for the
    modules reduced-precision graphs keep in FP32 (FP32_MODULES), and in an INT8 graph for every
    map that is not an INT8 product (kasf.export.quantize.INT8_PRODUCTS)."""
    if precision == "int8":
        return "int8" if runs_in_int8(name) else "fp32"
    return "fp32" if any(name == m or name.startswith(m + ".") for m in FP32_MODULES) else precision


def _relative_noise(shape, u: float, generator: torch.Generator, dtype) -> torch.Tensor:
    """d ~ U(-u, u): a rounding error anywhere within its bound."""
    return u * (2 * torch.rand(shape, generator=generator, dtype=dtype) - 1)


def _rounded(x: torch.Tensor, precision: str, generator: torch.Generator, per_row: bool = False) -> torch.Tensor:
    """x as the precision rounds it: relative to each value for floating point, relative to the
    tensor's range for INT8 (per_row: each row's range, a weight's per-channel scale)."""
    d = _relative_noise(x.shape, unit_roundoff(precision), generator, x.dtype)
    if precision != "int8":
        return x * (1 + d)
    amax = x.abs().amax(dim=tuple(range(1, x.dim())), keepdim=True) if per_row else x.abs().amax()
    return x + amax * d


@contextmanager
def rounding_noise(model: nn.Module, precision: str, seed: int = 0) -> Iterator[torch.Generator]:
    """Inside, every linear map of the model rounds as an engine of that precision rounds it: its
    weights once, its input and its output at every call, each value x becoming x (1 + d) with
    d ~ U(-u, u), u the unit roundoff of the precision the map runs in (map_precision; INT8: x +
    amax d, see the module's docstring). The weights are restored on the way out. The generator it yields rounds the keypoints
    (perturb_keypoints)."""
    generator = torch.Generator().manual_seed(seed)
    linears = [(module, map_precision(name, precision))
               for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    weights = [module.weight.detach().clone() for module, _ in linears]
    handles = []
    try:
        with torch.no_grad():
            for module, chosen in linears:
                module.weight.copy_(_rounded(module.weight, chosen, generator, per_row=True))
        for module, chosen in linears:
            handles.append(module.register_forward_pre_hook(
                lambda m, inputs, p=chosen: (_rounded(inputs[0], p, generator),)))
            handles.append(module.register_forward_hook(   # an INT8 product's output is FP32
                lambda m, inputs, output, p=chosen: _rounded(output, "fp32" if p == "int8" else p, generator)))
        yield generator
    finally:
        for handle in handles:
            handle.remove()
        with torch.no_grad():
            for (module, _), weight in zip(linears, weights):
                module.weight.copy_(weight)


def perturb_keypoints(keypoints: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """x and y rounded as FP32 rounds them (every engine takes FP32 keypoints); confidence kept."""
    out = keypoints.clone()
    out[..., :2] *= 1 + _relative_noise(keypoints[..., :2].shape, unit_roundoff("fp32"), generator, keypoints.dtype)
    return out
