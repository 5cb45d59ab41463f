"""Building a TensorRT plan from kasf's ONNX graph, strongly typed, with its sidecar and the
engine inspector's layer information summarised as a precision report."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from ... import __version__
from ...errors import KasfError
from ...export.artifact import read_metadata, require_metadata
from ...files import atomic_write, write_json
from ...model.checkpoint import file_sha256
from ...model.kasportsformer import IN_CHANNELS
from ...keypoints.skeleton import NUM_JOINTS
from ..base import check_batch_profile
from .sidecar import (SIDECAR_FORMAT, SIDECAR_VERSION, compute_capability_text, import_tensorrt, layers_path,
                      require_cuda, sha256_bytes, sidecar_path)

STRONGLY_TYPED, WEAK_FP16_FLAG = "strongly typed", "weakly typed (the FP16 or INT8 builder flag for such a graph)"
# The builder flag a weakly typed network needs for a graph of each reduced precision.
WEAK_TYPING_FLAGS = {"fp16": "FP16", "int8": "INT8"}
# Inspector layer types that move no data through a kernel of their own.
BOOKKEEPING_LAYERS = {"noop", "constant", "signal", "wait", "reformat"}
# A fused attention kernel names itself mha (_gemm_mha_v2, _gemv_mha_v1, fmha...).
FUSED_ATTENTION = re.compile(r"(^|[^a-z])f?mha([^a-z]|$)", re.IGNORECASE)


def network_typing(tensorrt_version: str, has_strongly_typed_flag: bool) -> str:
    """Strongly typed wherever TensorRT has it (always in 11.x, the creation flag in 10.x); the
    weak FP16 builder flag only for an old TensorRT without strong typing (FP16 weak typing is
    deprecated since 10.12 and gone in 11)."""
    major = int(tensorrt_version.split(".")[0])
    return STRONGLY_TYPED if has_strongly_typed_flag or major >= 11 else WEAK_FP16_FLAG


def tensor_precision(tensor: Mapping[str, Any]) -> str:
    """fp16 / bf16 / fp8 / int8 / fp32 / int / unknown, from a tensor of the inspector's layer JSON:
    TensorRT 10 writes one 'Format/Datatype' text ("Half", "Row major linear FP16 format"),
    TensorRT 11 separate 'Format' and 'DataType'."""
    text = " ".join(str(tensor.get(key, "")) for key in ("DataType", "Format/Datatype", "Format/DataType")).lower()
    for precision, words in (("fp16", ("half", "fp16")), ("bf16", ("bf16", "bfloat16")), ("fp8", ("fp8",)),
                             ("int", ("uint8", "int32", "int64", "bool")), ("int8", ("int8",)),
                             ("fp32", ("float", "fp32"))):
        if any(word in text for word in words):
            return precision
    return "unknown"


def precision_report(engine_information: Mapping[str, Any]) -> dict:
    """What the engine really runs, from IEngineInspector's JSON engine information.

    A layer's precision is that of its outputs (FP16 when any output is FP16 or BF16); the FP16
    share is over the layers that compute floating-point outputs, leaving out bookkeeping layers
    (no-ops, constants, stream signal/wait, reformats). Attention counts as fused when a layer's
    type, name or tactic names a fused multi-head-attention kernel (mha / fmha: TensorRT's
    _gemm_mha_v2, _gemv_mha_v1, fmha kernels) or the layer is of an attention type (IAttention):
    an unfused attention shows as separate gemm and softmax layers instead.
    """
    layers = list(engine_information.get("Layers", []))
    if layers and not isinstance(layers[0], Mapping):
        return {"detailed": False, "layers": len(layers),
                "note": "the engine holds layer names only (not built with detailed profiling verbosity)"}
    counts: Counter[str] = Counter()
    attention = []
    for layer in layers:
        kind = str(layer.get("LayerType", ""))
        names = f"{layer.get('Name', '')} {layer.get('TacticName', '')} {kind}"
        if FUSED_ATTENTION.search(names) or "attention" in kind.lower():
            attention.append(str(layer.get("Name", kind)))
        outputs = [tensor_precision(t) for t in layer.get("Outputs", []) if isinstance(t, Mapping)]
        if kind.lower() in BOOKKEEPING_LAYERS or not outputs:
            continue
        floating = [p for p in outputs if p in ("fp16", "bf16", "fp8", "fp32")]
        if floating:
            counts["fp16" if {"fp16", "bf16"} & set(floating) else floating[0]] += 1
        else:
            counts[outputs[0]] += 1
    floating_layers = sum(counts[p] for p in ("fp16", "fp32", "fp8"))
    return {
        "detailed": True,
        "layers": len(layers),
        "layers_by_precision": dict(counts.most_common()),
        "fp16_share": counts["fp16"] / floating_layers if floating_layers else 0.0,
        "attention_fused": bool(attention),
        "fused_attention_layers": attention,
        "layer_types": dict(Counter(str(layer.get("LayerType", "")) for layer in layers).most_common()),
    }


@dataclass
class BuiltEngine:
    path: Path
    sidecar_path: Path
    layers_path: Path
    sidecar: dict


@dataclass(frozen=True)
class BuildSettings:
    """How a plan is built: its batch profile, builder workspace, optimisation level, timing cache."""
    min_batch: int = 1
    opt_batch: int = 32
    max_batch: int = 256
    workspace_gib: float = 4.0
    optimization_level: int = 3
    timing_cache: Path | None = None

    def check(self) -> None:
        check_batch_profile(self.min_batch, self.opt_batch, self.max_batch)
        if self.workspace_gib <= 0:
            raise KasfError(f"the workspace must be a positive number of GiB, got {self.workspace_gib}")
        if not 0 <= self.optimization_level <= 5:
            raise KasfError(f"the builder optimisation level is 0 to 5, got {self.optimization_level}")

    def profile_shapes(self, n_frames: int) -> dict[str, list[int]]:
        sample = [n_frames, NUM_JOINTS, IN_CHANNELS]
        return {"min": [self.min_batch, *sample], "opt": [self.opt_batch, *sample], "max": [self.max_batch, *sample]}


def _onnx_metadata(onnx_path: Path) -> dict:
    if not onnx_path.is_file():
        raise KasfError(f"ONNX model {onnx_path} does not exist")
    meta = read_metadata(onnx_path)
    require_metadata(meta, onnx_path, "`kasf export` (--fp16 for an FP16 engine)", keys=("kasf_model_config", "kasf_io"))
    return meta


def build_engine(onnx_path: str | Path, engine_path: str | Path, min_batch: int = 1, opt_batch: int = 32,
                 max_batch: int = 256, workspace_gib: float = 4.0, optimization_level: int = 3,
                 timing_cache: str | Path | None = None) -> BuiltEngine:
    """Build a TensorRT plan from kasf's ONNX graph for batches min_batch..max_batch (tuned for
    opt_batch). timing_cache: loaded when the file exists, written back after the build. An FP16
    graph whose plan runs no layer in FP16 is refused (the layer information is written to show it)."""
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    meta = _onnx_metadata(onnx_path)
    settings = BuildSettings(min_batch, opt_batch, max_batch, workspace_gib, optimization_level,
                             Path(timing_cache) if timing_cache else None)
    settings.check()
    if engine_path.is_dir():
        raise KasfError(f"output {engine_path} is a directory; name the .engine file to write")
    trt = import_tensorrt()
    require_cuda("building a TensorRT engine")
    shapes = settings.profile_shapes(meta["kasf_model_config"]["n_frames"])
    precision = meta.get("kasf_precision", "fp32")
    typing = network_typing(trt.__version__, getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
                            is not None)
    logger = trt.Logger(trt.Logger.WARNING)
    started = time.perf_counter()
    plan = _build_plan(trt, logger, onnx_path, meta["kasf_io"]["input"], shapes, settings,
                       WEAK_TYPING_FLAGS.get(precision) if typing == WEAK_FP16_FLAG else None)
    build_seconds = time.perf_counter() - started
    information = _engine_information(trt, logger, plan, meta["kasf_io"]["input"], shapes["opt"])
    report = precision_report(information)
    write_json(layers_path(engine_path), information)
    reduced = {"fp16": report.get("fp16_share", 0), "int8": report.get("layers_by_precision", {}).get("int8", 0)}
    if precision in reduced and report["detailed"] and not reduced[precision]:
        raise KasfError(f"{engine_path} would be built from an {precision.upper()} graph but runs no layer in "
                        f"{precision.upper()} (see {layers_path(engine_path).name}): it is an FP32 engine")
    sidecar = _sidecar(trt.__version__, onnx_path, meta, typing, shapes, settings, plan, report)
    sidecar["builder"]["build_seconds"] = round(build_seconds, 2)
    atomic_write(engine_path, lambda tmp: Path(tmp).write_bytes(plan))
    write_json(sidecar_path(engine_path), sidecar)
    return BuiltEngine(engine_path, sidecar_path(engine_path), layers_path(engine_path), sidecar)


def _build_plan(trt, logger, onnx_path: Path, input_name: str, shapes: dict, settings: BuildSettings,
                weak_flag: str | None) -> bytes:
    """Parse, configure (no TF32, one profile, the timing cache) and build; the plan's bytes."""
    builder = trt.Builder(logger)
    strong_flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    major = int(trt.__version__.split(".")[0])
    # TensorRT 11 ignores (and deprecates) the flag: its networks are strongly typed anyway.
    network = builder.create_network(1 << int(strong_flag) if strong_flag is not None and major < 11 else 0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise KasfError(f"TensorRT {trt.__version__} cannot parse {onnx_path}: {errors or 'no reason given'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings.workspace_gib * (1 << 30)))
    config.builder_optimization_level = settings.optimization_level
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    config.clear_flag(trt.BuilderFlag.TF32)
    if weak_flag:
        config.set_flag(getattr(trt.BuilderFlag, weak_flag))
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, *(tuple(shapes[k]) for k in ("min", "opt", "max")))
    config.add_optimization_profile(profile)
    cache_path = settings.timing_cache
    if cache_path is not None:
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise KasfError(f"TensorRT {trt.__version__} could not build {onnx_path} (its log above says why; "
                        "a larger --workspace helps when it ran out of memory)")
    if cache_path is not None:
        cache_bytes = bytes(config.get_timing_cache().serialize())
        atomic_write(cache_path, lambda tmp: Path(tmp).write_bytes(cache_bytes))
    return bytes(serialized)


def _sidecar(tensorrt_version: str, onnx_path: Path, meta: dict, typing: str, shapes: dict, settings: BuildSettings,
             plan: bytes, report: dict) -> dict:
    device = torch.cuda.current_device()  # where TensorRT built
    return {
        "format": SIDECAR_FORMAT, "format_version": SIDECAR_VERSION, "kasf_version": __version__,
        "tensorrt_version": tensorrt_version, "gpu_name": torch.cuda.get_device_name(device),
        "compute_capability": compute_capability_text(torch.cuda.get_device_capability(device)),
        "network": typing, "tf32": False, "precision": meta.get("kasf_precision", "fp32"),
        "input": meta["kasf_io"]["input"], "output": meta["kasf_io"]["output"], "profile": shapes,
        "builder": {"workspace_gib": settings.workspace_gib, "optimization_level": settings.optimization_level,
                    "timing_cache": None if settings.timing_cache is None else str(settings.timing_cache)},
        "model_config": meta["kasf_model_config"],
        "onnx": {"path": str(onnx_path), "sha256": file_sha256(onnx_path)},
        "kasf_metadata": meta,
        "engine_sha256": sha256_bytes(plan), "engine_bytes": len(plan),
        "precision_report": report,
    }


def _engine_information(trt, logger, plan: bytes, input_name: str, shape: list[int]) -> dict:
    """IEngineInspector's JSON for the plan, at the profile's optimal shape (with dynamic shapes
    and no context the inspector reports no data types)."""
    runtime = trt.Runtime(logger)  # outlives the engine
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise KasfError("TensorRT could not deserialise the plan it has just built (its log above says why)")
    context = engine.create_execution_context()
    context.set_input_shape(input_name, tuple(shape))
    inspector = engine.create_engine_inspector()
    inspector.execution_context = context
    return json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
