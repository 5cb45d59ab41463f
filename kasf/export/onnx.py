"""ONNX graphs of the fused model: FP32, or strongly typed FP16 with FP32 inputs, outputs and
islands, with kasf's metadata inside the file.

Input `keypoints_2d` [batch, T, 17, 3] float32, output `poses_3d` [batch, T, 17, 3] float32;
only the batch axis is dynamic (T and the joints are fixed by the model).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import torch
from google.protobuf.message import DecodeError

from .. import __version__
from ..model.checkpoint import Checkpoint, build_from_checkpoint
from ..errors import KasfError
from ..files import atomic_write
from ..model.kasportsformer import IN_CHANNELS, KASportsFormer
from ..model.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS
from .fuse import FP32_ISLANDS, fuse

INPUT_NAME, OUTPUT_NAME = "keypoints_2d", "poses_3d"
# torch's exporter writes opset 18 and up (LayerNormalization is 17); the Attention op is 23.
MIN_OPSET, MAX_OPSET = 18, 23
DEFAULT_OPSET = 18
ATTENTION_OP_OPSET = 23
METADATA_VERSION = 1  # of the kasf_* keys below; a reader refuses a newer one


class ExportError(KasfError):
    """An export that cannot be done as asked (opset, output path, model)."""


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


def _example(config, batch: int = 2) -> torch.Tensor:
    keypoints = torch.rand(batch, config.n_frames, NUM_JOINTS, IN_CHANNELS) * 2 - 1
    keypoints[..., 2] = 1.0
    return keypoints


def _torch_export(module: torch.nn.Module, config, opset: int, max_batch: int) -> onnx.ModelProto:
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    # The exporter logs one line per missing torchvision op and warns about internals: not for users.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, (_example(config),), dynamo=True, opset_version=opset, optimize=True, verbose=False,
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


def metadata(checkpoint: Checkpoint, precision: str) -> dict[str, str]:
    """What a runtime needs to use the graph without the checkpoint: kasf's keys in the file."""
    return {
        "kasf_version": __version__,
        "kasf_metadata_version": str(METADATA_VERSION),
        "kasf_model_config": json.dumps(checkpoint.config.to_dict()),
        "kasf_skeleton": json.dumps({"joints": list(JOINT_NAMES), "parents": list(PARENTS)}),
        "kasf_input_normalization": json.dumps(checkpoint.normalization.to_dict()),
        "kasf_source": json.dumps(checkpoint.source),
        "kasf_precision": precision,
        "kasf_fp32_islands": json.dumps(FP32_ISLANDS if precision == "fp16" else []),
        "kasf_io": json.dumps({"input": INPUT_NAME, "output": OUTPUT_NAME,
                               "shape": ["batch", checkpoint.config.n_frames, NUM_JOINTS, 3]}),
    }


def read_metadata(model: onnx.ModelProto | str | Path) -> dict[str, Any]:
    """kasf's metadata of an exported graph, JSON values decoded. A file that is not a whole ONNX
    model, or one written in a newer kasf metadata format, is refused with a message saying so."""
    if not isinstance(model, onnx.ModelProto):
        try:
            model = onnx.load(str(model), load_external_data=False)
        except DecodeError:
            raise ExportError(f"{model} is not an ONNX model, or it is truncated: it does not parse as one "
                              "(export it again with `kasf export`)") from None
        except OSError as err:
            raise ExportError(f"cannot read {model}: {err.strerror}") from None
    values = {}
    for prop in model.metadata_props:
        if prop.key.startswith("kasf_"):
            try:
                values[prop.key] = json.loads(prop.value)
            except json.JSONDecodeError:
                values[prop.key] = prop.value
    written = values.get("kasf_metadata_version", METADATA_VERSION)
    if not isinstance(written, int) or written > METADATA_VERSION:
        raise ExportError(f"this graph's kasf metadata is format version {written} (kasf "
                          f"{values.get('kasf_version', '?')}); this kasf ({__version__}) reads up to "
                          f"{METADATA_VERSION}: upgrade kasf")
    return values


def _check_opset(opset: int) -> None:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset} is out of range: kasf exports opsets {MIN_OPSET} to {MAX_OPSET}")


def _check_output(path: Path) -> None:
    if path.is_dir():
        raise ExportError(f"output {path} is a directory; name the file to write")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExportError(f"cannot create the output directory {parent}: {err.strerror}") from None
    if not os.access(parent, os.W_OK):
        raise ExportError(f"output directory {parent} is not writable")


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
    _check_output(path)
    if max_batch < 1:
        raise ExportError(f"max batch must be at least 1, got {max_batch}")
    model = build_from_checkpoint(checkpoint)
    precision = "fp16" if fp16 else "fp32"
    graph = _torch_export(fuse(model, half=fp16, use_sdpa=use_sdpa), model.config, opset, max_batch)
    for key, value in metadata(checkpoint, precision).items():
        graph.metadata_props.add(key=key, value=value)
    graph.doc_string = f"KASportsFormer lifting 2D keypoints to 3D poses, {precision}, exported by kasf {__version__}"
    try:
        onnx.checker.check_model(graph, full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"the exported graph failed onnx.checker: {err}") from None
    atomic_write(path, lambda tmp: onnx.save(graph, tmp))
    counts = op_histogram(graph)
    return OnnxExport(path, counts, sum(counts.values()), path.stat().st_size, precision, opset)
