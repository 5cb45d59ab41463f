"""Floating-point work per clip, counted from the ONNX graph itself rather than a hand-kept constant,
so a benchmark's achieved GFLOP/s follows the model that actually ran.

What is counted: matrix products only: MatMul and Gemm, 2*M*N*K per product (one multiply and one
add per MAC), with the broadcast batch dimensions of MatMul multiplied in, and the two products inside
the ONNX Attention op (Q K^T and P V), so both attention forms count the same. Matrix products are
the dominant term of this transformer; element-wise ops, LayerNorm, Softmax, TopK and the like are
left out (a few per cent at most). For the paper preset this comes to about the paper's 13.8 GMACs = 27.6 GFLOP per 27-frame clip;
the tests check the count against torch.utils.flop_counter.FlopCounterMode on the reference model.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import onnx
import torch

from ..errors import KasfError

COUNTED_OPS = ("MatMul", "Gemm", "Attention")
COUNTED = ("matrix products only, from the ONNX graph: MatMul, Gemm and the Attention op's Q K^T and P V, "
           "2*M*N*K each (broadcast batch dimensions included)")


def _fixed_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """A copy of the graph with its dynamic batch axis set to `batch`, shapes inferred throughout."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for tensor in list(fixed.graph.input) + list(fixed.graph.output):
        axis = tensor.type.tensor_type.shape.dim[0]
        axis.Clear()
        axis.dim_value = batch
    return onnx.shape_inference.infer_shapes(fixed, data_prop=True)


def _known_shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    shapes = {init.name: list(init.dims) for init in model.graph.initializer}
    for info in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        shapes[info.name] = [d.dim_value if d.HasField("dim_value") else None
                             for d in info.type.tensor_type.shape.dim]
    return shapes


def _matmul_flops(a: list[int], b: list[int]) -> int:
    """numpy.matmul semantics: 1-D operands are promoted, leading dimensions broadcast."""
    a, b = ([1] + a if len(a) == 1 else a), (b + [1] if len(b) == 1 else b)
    m, k, n = a[-2], a[-1], b[-1]
    stacks = torch.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))
    return 2 * math.prod(stacks) * m * n * k


def _gemm_flops(node: onnx.NodeProto, a: list[int], b: list[int]) -> int:
    attributes = {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}
    m, k = (a[1], a[0]) if attributes.get("transA", 0) else (a[0], a[1])
    n = b[0] if attributes.get("transB", 0) else b[1]
    return 2 * m * n * k


def _attention_flops(node: onnx.NodeProto, q: list[int], k: list[int], v: list[int]) -> int:
    """Q K^T and P V, for 4-D [B, heads, S, head_dim] inputs or 3-D [B, S, heads * head_dim] ones."""
    if len(q) == 4:
        batch, heads, queries, q_dim = q
        return 2 * batch * heads * queries * k[2] * (q_dim + v[3])
    attributes = {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}
    heads, kv_heads = attributes["q_num_heads"], attributes["kv_num_heads"]
    batch, queries, channels = q
    return 2 * batch * heads * queries * k[1] * (channels // heads + v[2] // kv_heads)


def graph_flops(model: onnx.ModelProto | str | Path, batch: int = 2) -> dict:
    """FLOPs per clip of a kasf ONNX graph (matrix products only), from shapes inferred at `batch`:
    {"flops_per_clip", "by_op": {op: flops per clip}, "products": number of counted nodes}."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    inferred = _fixed_batch(model, batch)
    shapes = _known_shapes(inferred)
    by_op = dict.fromkeys(COUNTED_OPS, 0)
    products = 0
    for node in inferred.graph.node:
        if node.op_type not in COUNTED_OPS:
            continue
        operands = [shapes.get(name) for name in node.input[:3 if node.op_type == "Attention" else 2]]
        if any(not shape or None in shape for shape in operands):
            raise KasfError(f"cannot count the FLOPs of {node.op_type} node {node.name!r}: ONNX shape inference "
                            f"left its input shapes unknown {tuple(operands)}")
        if node.op_type == "Attention":
            flops = _attention_flops(node, *operands)
        elif node.op_type == "Gemm":
            flops = _gemm_flops(node, *operands)
        else:
            flops = _matmul_flops(*operands)
        by_op[node.op_type] += flops
        products += 1
    return {"flops_per_clip": sum(by_op.values()) / batch, "by_op": {op: f / batch for op, f in by_op.items()},
            "products": products}


class FlopsByConfig:
    """FLOPs per clip keyed by model config: the count depends on the architecture, not the weights,
    so a PyTorch or TensorRT engine is counted from any graph of the same config, or from a
    temporary export of a randomly initialised model of that config."""

    def __init__(self):
        self._counted: dict[str, float] = {}

    @staticmethod
    def _key(config: dict) -> str:
        return json.dumps(config, sort_keys=True)

    def for_file(self, config: dict, path: str | Path) -> float:
        """Counted from the file where it is an ONNX graph, else from a graph exported for its config."""
        key = self._key(config)
        if key not in self._counted and Path(path).suffix.lower() == ".onnx":
            self._counted[key] = graph_flops(path)["flops_per_clip"]
        return self.for_config(config)

    def for_config(self, config: dict) -> float:
        key = self._key(config)
        if key not in self._counted:
            from ..model.checkpoint import Checkpoint
            from ..model.config import ModelConfig
            from ..export.onnx import export_onnx
            from ..model.kasportsformer import build_model

            model = build_model(ModelConfig.from_dict(config)).eval()
            with tempfile.TemporaryDirectory() as folder:
                exported = export_onnx(Checkpoint(model.config, model.state_dict()), Path(folder) / "count.onnx")
                self._counted[key] = graph_flops(exported.path)["flops_per_clip"]
        return self._counted[key]
