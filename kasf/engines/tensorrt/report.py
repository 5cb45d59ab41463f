"""What a built plan really runs, read from the engine inspector's JSON: the share of layers in FP16
and whether attention was fused. The JSON's schema differs between TensorRT 10 and 11, so a field
kasf cannot read makes the precision "unknown", with the reason, never FP32 by default."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Mapping

# Inspector layer types that move no data through a kernel of their own.
BOOKKEEPING_LAYERS = {"noop", "constant", "signal", "wait", "reformat"}
# A fused attention kernel names itself mha (_gemm_mha_v2, _gemv_mha_v1, fmha...).
FUSED_ATTENTION = re.compile(r"(^|[^a-z])f?mha([^a-z]|$)", re.IGNORECASE)
# Where a tensor of the layer JSON says its type, most telling first (keys compared case-blind):
# TensorRT 11 writes a data type and a format apart, TensorRT 10 one 'Format/Datatype' text
# ("Half", "Row major linear FP16 format").
TYPE_KEYS = ("DataType", "Format/DataType", "Format")
# The words of a type or format text that name each precision, in the order they are tried.
PRECISION_WORDS = (("fp16", ("half", "fp16")), ("bf16", ("bf16", "bfloat16")), ("fp8", ("fp8",)),
                   ("int", ("uint8", "int32", "int64", "bool")), ("int8", ("int8",)), ("fp32", ("float", "fp32")))
FLOATING = ("fp16", "bf16", "fp8", "fp32")


def _precision_of_text(text: str) -> str:
    text = text.lower()
    for precision, words in PRECISION_WORDS:
        if any(word in text for word in words):
            return precision
    return "unknown"


def tensor_precision(tensor: Mapping[str, Any]) -> str:
    """fp16 / bf16 / fp8 / int8 / fp32 / int / unknown, from a tensor of the inspector's layer JSON,
    under either TensorRT's schema: the first of TYPE_KEYS whose text names a precision."""
    fields = {str(key).lower(): value for key, value in tensor.items()}
    for key in TYPE_KEYS:
        found = _precision_of_text(str(fields.get(key.lower(), "")))
        if found != "unknown":
            return found
    return "unknown"


def io_tensor_names(information: Mapping[str, Any]) -> list[str]:
    """The plan's input and output names: TensorRT 10's 'Bindings' (names) or 11's 'I/O Tensors' (objects)."""
    tensors = information.get("I/O Tensors", information.get("Bindings", []))
    return [str(t.get("Name", "?")) if isinstance(t, Mapping) else str(t) for t in tensors or []]


def _unknown(layers: int, reason: str, io_tensors: list[str]) -> dict:
    return {"detailed": False, "precision": "unknown", "layers": layers, "reason": reason,
            "note": f"precision unknown: {reason}", "io_tensors": io_tensors}


def _layer_precision(layer: Mapping[str, Any]) -> str | None:
    """A layer's precision is its outputs' (FP16 when any output is FP16 or BF16); None for
    bookkeeping layers and layers without outputs."""
    outputs = [tensor_precision(t) for t in layer.get("Outputs", []) if isinstance(t, Mapping)]
    if str(layer.get("LayerType", "")).lower() in BOOKKEEPING_LAYERS or not outputs:
        return None
    floating = [p for p in outputs if p in FLOATING]
    if floating:
        return "fp16" if {"fp16", "bf16"} & set(floating) else floating[0]
    return "unknown" if "unknown" in outputs else outputs[0]


def _fused_attention(layers: list[Mapping[str, Any]]) -> list[str]:
    """Layers whose type, name or tactic names a fused multi-head-attention kernel, or of an
    attention type (IAttention); an unfused attention shows as separate gemm and softmax layers."""
    fused = []
    for layer in layers:
        kind = str(layer.get("LayerType", ""))
        if FUSED_ATTENTION.search(f"{layer.get('Name', '')} {layer.get('TacticName', '')} {kind}") \
                or "attention" in kind.lower():
            fused.append(str(layer.get("Name", kind)))
    return fused


def _unreadable(layers: list[Mapping[str, Any]], counts: Counter) -> str | None:
    """Why the layers' precisions cannot be told apart from FP32, or None when they can."""
    if counts["unknown"] == 0 or counts["fp16"]:
        return None
    keys = sorted({str(k) for layer in layers for t in layer.get("Outputs", []) if isinstance(t, Mapping)
                   for k in t})
    read = sum(counts.values()) - counts["unknown"]
    return (f"{counts['unknown']} of {sum(counts.values())} computing layers name no type kasf reads in their "
            f"outputs (it reads {', '.join(TYPE_KEYS)}; their outputs have {', '.join(keys) or 'no fields'}), "
            f"{read} do and none of those is FP16: the engine may be FP16 or FP32")


def precision_report(engine_information: Mapping[str, Any]) -> dict:
    """What the engine really runs, from IEngineInspector's JSON engine information (TensorRT 10's
    or 11's schema). The FP16 share is over the layers that compute floating-point outputs,
    leaving out bookkeeping layers (no-ops, constants, stream signal/wait, reformats). A report
    kasf cannot read is {"detailed": False, "precision": "unknown", "reason": ...}."""
    io_tensors = io_tensor_names(engine_information)
    layers = engine_information.get("Layers")
    if not isinstance(layers, list) or not layers:
        return _unknown(0, f"the engine information has no list of layers (it has "
                           f"{', '.join(map(str, engine_information)) or 'nothing'})", io_tensors)
    if not all(isinstance(layer, Mapping) for layer in layers):
        return _unknown(len(layers), "the engine holds layer names only (not built with detailed profiling "
                                     "verbosity)", io_tensors)
    counts = Counter(p for p in map(_layer_precision, layers) if p is not None)
    reason = "no layer computes an output" if not counts else _unreadable(layers, counts)
    if reason:
        return _unknown(len(layers), reason, io_tensors)
    floating_layers = sum(counts[p] for p in ("fp16", "fp32", "fp8"))
    attention = _fused_attention(layers)
    return {
        "detailed": True,
        "layers": len(layers),
        "layers_by_precision": dict(counts.most_common()),
        "unknown_layers": counts["unknown"],
        "fp16_share": counts["fp16"] / floating_layers if floating_layers else 0.0,
        "attention_fused": bool(attention),
        "fused_attention_layers": attention,
        "layer_types": dict(Counter(str(layer.get("LayerType", "")) for layer in layers).most_common()),
        "io_tensors": io_tensors,
    }
