"""Building a TensorRT plan from kasf's ONNX graph, strongly typed, with its sidecar and the
engine inspector's layer information summarised as a precision report."""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ... import __version__
from ...errors import KasfError
from ...export.artifact import read_metadata, require_metadata
from ...files import atomic_write, write_json
from ...model.checkpoint import file_sha256
from ...model.kasportsformer import IN_CHANNELS
from ...keypoints.skeleton import NUM_JOINTS
from ..base import check_batch_profile
from .report import precision_report
from .shapes import set_input_shape
from .sidecar import (SIDECAR_FORMAT, SIDECAR_VERSION, compute_capability_text, import_tensorrt, layers_path,
                      require_cuda, sha256_bytes, sidecar_path)

STRONGLY_TYPED, WEAK_FP16_FLAG = "strongly typed", "weakly typed (the FP16 or INT8 builder flag for such a graph)"
# The builder flag a weakly typed network needs for a graph of each reduced precision.
WEAK_TYPING_FLAGS = {"fp16": "FP16", "int8": "INT8"}


def network_typing(tensorrt_version: str, has_strongly_typed_flag: bool) -> str:
    """Strongly typed wherever TensorRT has it (always in 11.x, the creation flag in 10.x); the
    weak FP16 builder flag only for an old TensorRT without strong typing (FP16 weak typing is
    deprecated since 10.12 and gone in 11)."""
    major = int(tensorrt_version.split(".")[0])
    return STRONGLY_TYPED if has_strongly_typed_flag or major >= 11 else WEAK_FP16_FLAG


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
    opt_batch). timing_cache: loaded when the file exists (one TensorRT refuses, recorded on another
    GPU, is replaced by a fresh one, with a warning), written back after the build. An FP16 graph
    whose plan runs no layer in FP16 is refused (the layer information is written to show it); a
    layer report kasf cannot read claims no precision, and a warning says why."""
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
    check_precision(report, precision, engine_path)
    sidecar = _sidecar(trt.__version__, onnx_path, meta, typing, shapes, settings, plan, report)
    sidecar["builder"]["build_seconds"] = round(build_seconds, 2)
    atomic_write(engine_path, lambda tmp: Path(tmp).write_bytes(plan))
    write_json(sidecar_path(engine_path), sidecar)
    return BuiltEngine(engine_path, sidecar_path(engine_path), layers_path(engine_path), sidecar)


def check_precision(report: dict, precision: str, engine_path: Path) -> None:
    """Refuse a plan built from an FP16 (INT8) graph that runs no layer in FP16 (INT8); warn, and
    claim no precision, when the inspector's report could not be read."""
    layers = layers_path(engine_path).name
    if report.get("precision") == "unknown":
        warnings.warn(f"cannot tell which precision {engine_path} runs ({report['reason']}); see {layers}",
                      stacklevel=3)
        return
    reduced = {"fp16": report.get("fp16_share", 0), "int8": report.get("layers_by_precision", {}).get("int8", 0)}
    if precision in reduced and not reduced[precision]:
        raise KasfError(f"{engine_path} would be built from an {precision.upper()} graph but runs no layer in "
                        f"{precision.upper()} (see {layers}): it is an FP32 engine")


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
    config = _configure(trt, builder, input_name, shapes, settings, weak_flag)
    if settings.timing_cache is not None:
        attach_timing_cache(config, settings.timing_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise KasfError(f"TensorRT {trt.__version__} could not build {onnx_path} (its log above says why; "
                        "a larger --workspace helps when it ran out of memory)")
    if settings.timing_cache is not None:
        save_timing_cache(config, settings.timing_cache)
    return bytes(serialized)


def _configure(trt, builder, input_name: str, shapes: dict, settings: BuildSettings, weak_flag: str | None):
    """The builder config: workspace, optimisation level, detailed profiling (for the inspector),
    no TF32, the weak typing flag where one is needed, one profile over the batch axis."""
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
    return config


def attach_timing_cache(config, path: Path):
    """Give the builder the timing cache in `path` (a new one when there is no file). A cache whose
    device properties differ from this GPU's (set_timing_cache returns False) is replaced by a fresh
    one, with a warning; the build then writes the fresh one over the stale file."""
    blob = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(blob)
    if cache is None:
        raise KasfError(f"TensorRT cannot read the timing cache {path} (damaged, or written by another TensorRT "
                        "version): delete it, or name another file with --timing-cache" if blob else
                        "TensorRT could not create a new timing cache (its log above says why)")
    if config.set_timing_cache(cache, ignore_mismatch=False):
        return cache
    if blob:
        warnings.warn(f"TensorRT refused the timing cache {path}: it was recorded on a GPU with other device "
                      "properties; building with a fresh cache, which then replaces it", stacklevel=4)
        return _fresh_cache(config)
    raise KasfError("TensorRT refused a new, empty timing cache (its log above says why)")


def _fresh_cache(config):
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        raise KasfError("TensorRT could not create a new timing cache (its log above says why)")
    return cache


def save_timing_cache(config, path: Path) -> None:
    """Write the builder's timing cache (the one read, grown by the build, or the fresh one) to `path`."""
    cache = config.get_timing_cache()
    if cache is None:
        raise KasfError(f"TensorRT holds no timing cache after the build: {path} is left as it was")
    data = bytes(cache.serialize())
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


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
    set_input_shape(engine, context, input_name, shape, "the plan just built")
    inspector = engine.create_engine_inspector()
    # A property: its setter's bool (false when the inspector refuses the context) does not reach
    # Python, so the context is read back.
    inspector.execution_context = context
    if inspector.execution_context is None:
        raise KasfError("TensorRT's engine inspector refused the execution context of the plan just built (its log "
                        "above says why): without it the layer information has no data types")
    return json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
