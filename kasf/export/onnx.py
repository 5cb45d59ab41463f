"""ONNX graphs of the fused model: FP32, or strongly typed FP16 with FP32 inputs, outputs and
islands, with kasf's metadata inside the file.

Input `keypoints_2d` [batch, T, 17, 3] float32, output `poses_3d` [batch, T, 17, 3] float32;
only the batch axis is dynamic (T and the joints are fixed by the model).
"""

from __future__ import annotations

import collections
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch

from .. import __version__
from ..files import atomic_write
from ..model.checkpoint import Checkpoint, build_from_checkpoint
from ..model.kasportsformer import KASportsFormer
from .artifact import (INPUT_NAME, OUTPUT_NAME, ExportError, check_max_batch, check_output_path, example_input,
                       file_metadata)
from .fuse import fuse

# torch's exporter writes opset 18 and up (LayerNormalization is 17); the Attention op is 23.
MIN_OPSET, MAX_OPSET = 18, 23
DEFAULT_OPSET = 18
ATTENTION_OP_OPSET = 23


@dataclass
class OnnxExport:
    path: Path
    op_counts: dict[str, int]
    nodes: int
    size_bytes: int
    precision: str
    opset: int


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    """Node count by op type, functions expanded into their nodes' types."""
    counts = collections.Counter(node.op_type for node in model.graph.node)
    functions = {(f.domain, f.name): f for f in model.functions}
    for key, function in functions.items():
        calls = sum(1 for node in model.graph.node if (node.domain, node.op_type) == key)
        if calls:
            counts.pop(function.name, None)
            for node in function.node:
                counts[node.op_type] += calls
    return dict(counts.most_common())


def _torch_export(module: torch.nn.Module, config, opset: int, max_batch: int) -> onnx.ModelProto:
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    # The exporter logs one line per missing torchvision op and warns about internals: not for users.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, (example_input(config),), dynamo=True, opset_version=opset, optimize=True, verbose=False,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes={"keypoints": {0: batch}})
    graph = program.model_proto
    written = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    if written != opset:
        raise ExportError(f"asked for opset {opset}, the exporter wrote {written}")
    for node in graph.graph.node:
        # The exporter's per-node Python stack traces and scopes: megabytes, and the exporting
        # machine's file paths, of no use to a runtime.
        del node.metadata_props[:]
    return graph


def _check_opset(opset: int) -> None:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset} is out of range: kasf exports opsets {MIN_OPSET} to {MAX_OPSET}")


def plain_graph(model: KASportsFormer, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The reference model exported as it is (no fusion): the baseline the fused graph improves on."""
    _check_opset(opset)
    return _torch_export(model.eval(), model.config, opset, max_batch=1024)


def export_onnx(checkpoint: Checkpoint, path: str | Path, fp16: bool = False, opset: int | None = None,
                max_batch: int = 1024, use_sdpa: bool = False) -> OnnxExport:
    """Fuse, export, check (onnx.checker full check) and write atomically, metadata inside.
    use_sdpa: attention as the ONNX Attention op (opset 23 and up), ONNX Runtime's fastest form;
    otherwise MatMul-Softmax-MatMul, the form TensorRT fuses. opset: by default 18, or 23 with
    use_sdpa."""
    if opset is None:
        opset = ATTENTION_OP_OPSET if use_sdpa else DEFAULT_OPSET
    _check_opset(opset)
    if use_sdpa and opset < ATTENTION_OP_OPSET:
        raise ExportError(f"the Attention op form needs opset {ATTENTION_OP_OPSET} or later, got {opset}")
    path = Path(path)
    check_output_path(path)
    check_max_batch(max_batch)
    model = build_from_checkpoint(checkpoint)
    precision = "fp16" if fp16 else "fp32"
    fused = fuse(model, torch.float16 if fp16 else torch.float32, use_sdpa)
    graph = _torch_export(fused, model.config, opset, max_batch)
    for key, value in file_metadata(checkpoint, precision).items():
        graph.metadata_props.add(key=key, value=value)
    return write_graph(graph, path, precision)


def write_graph(graph: onnx.ModelProto, path: Path, precision: str) -> OnnxExport:
    """Describe, check (onnx.checker's full check) and write a graph atomically; what was written."""
    graph.doc_string = f"KASportsFormer lifting 2D keypoints to 3D poses, {precision}, exported by kasf {__version__}"
    try:
        onnx.checker.check_model(graph, full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"the {precision} graph failed onnx.checker: {err}") from None
    atomic_write(path, lambda tmp: onnx.save(graph, tmp))
    counts = op_histogram(graph)
    opset = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    return OnnxExport(path, counts, sum(counts.values()), path.stat().st_size, precision, opset)
