"""INT8 graphs: the fused FP32 graph with its large products quantized to 8 bits, static QDQ
(QuantizeLinear / DequantizeLinear pairs) by ONNX Runtime's own quantization tools, calibrated on
the embedded motion capture's training clips.

Only the products that tolerate 8 bits are quantized (INT8_PRODUCTS): the attention queries, keys
and values, the MLPs' first map and the GCN maps. Everything else stays FP32 (INT8_FP32_ISLANDS):
FP32_ISLANDS, as in the FP16 graph, and the maps whose outputs feed the residual stream or a
decision directly. Measured on `small` trained 15 minutes, one family quantized at a time (mean
deviation from FP32): queries/keys/values 0.75 mm, MLP first map 0.54 mm, GCN maps 0.63 mm; but
the MLP's second map 2.4 mm, the attention output 4.4 mm, the head and limb context 18 mm, the
branch fusion 27 mm.

Scales are symmetric (zero point 0) in signed 8 bits, per output channel for weights and per
tensor for activations, from the calibration clips' min/max. Only a product's inputs are
quantized; its output stays FP32 (no Q/DQ after it). That is the form TensorRT's explicit
quantization builds from, and the one ONNX Runtime's CPU fuses whole into integer Gemm kernels
with float output (VNNI or AMX where the CPU has them). With quantized outputs ONNX Runtime fused
16 of the 52 products of `small`: it duplicates the dequantization before GELU's two uses, and
then its S8-to-U8 rewrite leaves the output signed and the input unsigned.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx

from ..model.checkpoint import Checkpoint
from .artifact import INPUT_NAME, ExportError, check_output_path
from .fuse import FP32_ISLANDS
from .onnx import OnnxExport, export_onnx, write_graph

# The module paths (of the reference model and of the fused graph's weights alike) whose linear
# maps run in INT8.
INT8_PRODUCTS = (
    r"\.mixer\.(qkv|q)$",                          # attention queries (and keys, values) of the tokens
    r"\.mlp\.fc1$",                                # the MLPs' first map
    r"gcn_(spatial|temporal)\.mixer\.(U|V|vu)$",   # the GCNs' maps
)
# Where the INT8 graph computes in FP32: the FP16 graph's islands, and the maps too sensitive for 8 bits.
INT8_FP32_ISLANDS = FP32_ISLANDS + (
    "attention_output",     # the projection back into the residual stream
    "mlp_output",           # the MLP's second map: GELU's long-tailed outputs, into the stream
    "limb_context",         # the limb tokens' keys and values, shared by every cross-attention
    "branch_fusion",        # the adaptive fusion's weights over the four branches
    "head",                 # the head's maps
)
CALIBRATION_CLIPS = 128
CALIBRATION_BATCH = 4      # clips per calibration run; the calibrator keeps one run's activations at a time
QUANTIZED_OPS = ("MatMul", "Gemm")


def runs_in_int8(module: str) -> bool:
    """Whether an INT8 graph computes this module's linear maps in INT8 (INT8_PRODUCTS)."""
    return any(re.search(pattern, module) for pattern in INT8_PRODUCTS)


def calibration_keypoints(count: int = CALIBRATION_CLIPS, n_frames: int = 27) -> np.ndarray:
    """`count` training clips of the embedded motion capture, evenly spread over the split (no random
    draw: the same clips, so the same scales, every time)."""
    from ..data.splits import load_splits

    if count < 1:
        raise ExportError(f"INT8 calibration needs at least one clip, got {count}")
    train = load_splits("mocap", n_frames=n_frames).train
    picked = np.linspace(0, len(train) - 1, min(count, len(train))).round().astype(np.int64)
    return train.keypoints[np.unique(picked)]


def quantized_nodes(graph: onnx.ModelProto) -> list[str]:
    """The MatMul/Gemm nodes whose weight (an initializer named by module path) is an INT8 product."""
    weights = {init.name for init in graph.graph.initializer}
    chosen = []
    for node in graph.graph.node:
        if node.op_type not in QUANTIZED_OPS:
            continue
        named = [name.removesuffix(".weight") for name in node.input if name in weights]
        if named and runs_in_int8(named[0]):
            chosen.append(node.name)
    return chosen


@contextmanager
def _quiet_root_logger():
    """The quantizer warns through the root logger to pre-process the graph (shape inference and
    ORT's optimiser); kasf's graph is already fused and shaped, so the advice is noise here."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class _CalibrationReader:
    """ONNX Runtime's calibration data reader protocol over fixed keypoints, in runs of
    CALIBRATION_BATCH clips; len and set_range let the calibrator take them a stride at a time."""

    def __init__(self, keypoints: np.ndarray):
        self._runs = [np.ascontiguousarray(keypoints[i:i + CALIBRATION_BATCH], dtype=np.float32)
                      for i in range(0, len(keypoints), CALIBRATION_BATCH)]
        self.set_range(0, len(self._runs))

    def __len__(self) -> int:
        return len(self._runs)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._pending = iter(self._runs[start_index:end_index])

    def get_next(self) -> dict | None:
        run = next(self._pending, None)
        return None if run is None else {INPUT_NAME: run}


def export_int8(checkpoint: Checkpoint, path: str | Path, max_batch: int = 1024,
                calibration_clips: int = CALIBRATION_CLIPS) -> OnnxExport:
    """The FP32 graph with the INT8 products quantized, calibrated and checked, written atomically
    with kasf's metadata (precision "int8", its FP32 islands, the quantized modules, the calibration).

    The MatMul-Softmax-MatMul form at opset 18, the one TensorRT fuses: the Attention-op form (opset
    23) quantizes, but ONNX Runtime 1.32 cannot load it (its QDQ propagation and S8-to-U8 rewrites
    leave a QuantizeLinear whose output_dtype contradicts its zero point)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    path = Path(path)
    check_output_path(path)
    keypoints = calibration_keypoints(calibration_clips, checkpoint.config.n_frames)
    with tempfile.TemporaryDirectory(prefix="kasf-int8-") as scratch:
        fp32, quantized = Path(scratch) / "fp32.onnx", Path(scratch) / "int8.onnx"
        export_onnx(checkpoint, fp32, max_batch=max_batch)
        nodes = quantized_nodes(onnx.load(str(fp32)))
        if not nodes:
            raise ExportError("no product of this graph matches INT8_PRODUCTS: nothing to quantize")
        with _quiet_root_logger():
            quantize_static(str(fp32), str(quantized), _CalibrationReader(keypoints), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=list(QUANTIZED_OPS), nodes_to_quantize=nodes, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                           "OpTypesToExcludeOutputQuantization": list(QUANTIZED_OPS),
                                           # ranges merged run by run: the calibrator keeps every product's
                                           # activations, and the paper preset's for 128 clips fill > 24 GB
                                           "CalibStridedMinMax": 1})
        graph = onnx.load(str(quantized))
    _set_int8_metadata(graph, len(nodes), len(keypoints))
    return write_graph(graph, path, "int8")


def _set_int8_metadata(graph: onnx.ModelProto, products: int, clips: int) -> None:
    """The FP32 graph's kasf keys (the quantizer keeps them), restated for INT8."""
    values = {prop.key: prop.value for prop in graph.metadata_props}
    values.update({
        "kasf_precision": "int8",
        "kasf_fp32_islands": json.dumps(INT8_FP32_ISLANDS),
        "kasf_int8": json.dumps({"products": list(INT8_PRODUCTS), "quantized_nodes": products,
                                 "calibration": {"data": "mocap train", "clips": clips, "method": "minmax",
                                                 "scales": "symmetric int8, per channel (weights), per tensor "
                                                           "(inputs); outputs FP32"}}),
    })
    del graph.metadata_props[:]
    for key, value in values.items():
        graph.metadata_props.add(key=key, value=value)
