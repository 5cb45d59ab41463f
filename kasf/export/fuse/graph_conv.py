"""fold_graph_conv: eval BatchNorm folded into the skeleton adjacency and one constant (spatial),
or into one scale-and-shift per frame (temporal)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ...model.layers import GraphConv
from ...keypoints.skeleton import NUM_JOINTS
from .precision import island


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
