"""TensorRT backend: build an engine from kasf's ONNX graph, and run it.

Build (`build_engine`): a strongly typed network from the ONNX file, so the precision is the
graph's own (kasf's `--fp16` export is FP16 with FP32 inputs, outputs and islands); TensorRT 11
networks are always strongly typed, and only a TensorRT without strong typing falls back to the
weak FP16 builder flag. TF32 is turned off: it would round the FP32 islands' matmuls (and every
matmul of an FP32 graph) to 10-bit mantissas. One optimisation profile spans the batch axis. The
plan is written atomically with a JSON sidecar `<engine>.json` (TensorRT version, GPU, compute
capability, profile, names, model config, the ONNX's kasf metadata and SHA-256, the plan's
SHA-256) and the engine inspector's layer information `<engine>.layers.json`, summarised in the
sidecar as a precision report: the share of layers running in FP16 and whether attention was fused.

Run (`TensorRTEngine`): the sidecar is checked against the running TensorRT and GPU first (a plan
only runs on the TensorRT version and compute capability it was built for), then the plan is
deserialised and run with execute_async_v3 on torch CUDA buffers through pinned host staging, on
its own torch CUDA stream; optionally as one CUDA graph per batch size.

`import tensorrt` happens inside the functions that need it: this module imports anywhere.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .. import __version__
from ..model.checkpoint import file_sha256
from ..errors import InputError, KasfError
from ..export.onnx import read_metadata
from ..files import atomic_write
from .base import Engine, cuda_event_seconds

SIDECAR_FORMAT = "kasf-tensorrt-engine"
SIDECAR_VERSION = 1
INSTALL_HINT = ("pip install 'kasf[tensorrt]' --extra-index-url https://pypi.nvidia.com "
                "(NVIDIA publishes the TensorRT wheels on its own index)")
STRONGLY_TYPED, WEAK_FP16_FLAG = "strongly typed", "weakly typed (FP16 builder flag for an FP16 graph)"
# Inspector layer types that move no data through a kernel of their own.
BOOKKEEPING_LAYERS = {"noop", "constant", "signal", "wait", "reformat"}
# A fused attention kernel names itself mha (_gemm_mha_v2, _gemv_mha_v1, fmha...).
FUSED_ATTENTION = re.compile(r"(^|[^a-z])f?mha([^a-z]|$)", re.IGNORECASE)


class EngineCompatibilityError(KasfError):
    """A TensorRT plan built for another TensorRT version or GPU compute capability."""


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as err:
        raise KasfError(f"TensorRT is not installed ({err}): {INSTALL_HINT}") from None
    return tensorrt


def sidecar_path(engine_path: str | Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def layers_path(engine_path: str | Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".layers.json")


def read_sidecar(engine_path: str | Path) -> dict:
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise KasfError(f"{engine_path} has no sidecar {path.name}: kasf runs only plans it built, with what they "
                        "were built for next to them; build it with `kasf build`")
    try:
        sidecar = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise KasfError(f"sidecar {path} is not valid JSON ({err}): rebuild the engine with `kasf build`") from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        raise KasfError(f"{path} is not a kasf TensorRT sidecar (no format '{SIDECAR_FORMAT}')")
    if sidecar.get("format_version", 0) > SIDECAR_VERSION:
        raise KasfError(f"sidecar {path} is format version {sidecar['format_version']}; this kasf ({__version__}) "
                        f"reads up to {SIDECAR_VERSION}: upgrade kasf")
    return sidecar


def compute_capability_text(capability: tuple[int, int] | str) -> str:
    return capability if isinstance(capability, str) else f"{capability[0]}.{capability[1]}"


def check_engine_compatibility(sidecar: Mapping[str, Any], tensorrt_version: str, gpu_name: str,
                               compute_capability: tuple[int, int] | str) -> list[str]:
    """Refuse a plan built for another TensorRT version or compute capability, saying which.
    Returns notes on what TensorRT accepts but a user should know (another GPU model of the same
    compute capability: its tactics were timed on the other model)."""
    running_cc = compute_capability_text(compute_capability)
    problems = []
    for key in ("tensorrt_version", "compute_capability", "gpu_name"):
        if key not in sidecar:
            problems.append(f"the sidecar does not say its {key.replace('_', ' ')}")
    built_version, built_cc = sidecar.get("tensorrt_version"), sidecar.get("compute_capability")
    if built_version is not None and built_version != tensorrt_version:
        problems.append(f"it was built with TensorRT {built_version}, this is TensorRT {tensorrt_version}")
    if built_cc is not None and built_cc != running_cc:
        problems.append(f"it was built for compute capability {built_cc} ({sidecar.get('gpu_name')}), "
                        f"this GPU ({gpu_name}) is compute capability {running_cc}")
    if problems:
        onnx = sidecar.get("onnx", {}).get("path", "model.onnx")
        raise EngineCompatibilityError(
            "this TensorRT engine cannot run here: " + "; ".join(problems) + ". A plan runs only on the TensorRT "
            f"version and GPU compute capability it was built for: rebuild it here (`kasf build {onnx} -o ...`)")
    if sidecar["gpu_name"] != gpu_name:
        return [f"built on a {sidecar['gpu_name']}, running on a {gpu_name} (both compute capability {running_cc}): "
                "TensorRT accepts it, but its kernels were timed on the other GPU; rebuild here for best speed"]
    return []


def network_typing(tensorrt_version: str, has_strongly_typed_flag: bool) -> str:
    """Strongly typed wherever TensorRT has it (always in 11.x, the creation flag in 10.x); the
    weak FP16 builder flag only for an old TensorRT without strong typing (FP16 weak typing is
    deprecated since 10.12 and gone in 11)."""
    major = int(tensorrt_version.split(".")[0])
    return STRONGLY_TYPED if has_strongly_typed_flag or major >= 11 else WEAK_FP16_FLAG


def check_profile(min_batch: int, opt_batch: int, max_batch: int) -> None:
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise KasfError(f"the batch profile must satisfy 1 <= min <= opt <= max, got min {min_batch}, "
                        f"opt {opt_batch}, max {max_batch}")


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


def _onnx_metadata(onnx_path: Path) -> dict:
    if not onnx_path.is_file():
        raise KasfError(f"ONNX model {onnx_path} does not exist")
    meta = read_metadata(onnx_path)
    if "kasf_model_config" not in meta or "kasf_io" not in meta:
        raise KasfError(f"{onnx_path} has no kasf metadata: export it with `kasf export` (--fp16 for an FP16 engine)")
    return meta


def _require_cuda(what: str) -> None:
    if not torch.cuda.is_available():
        raise KasfError(f"{what} needs an NVIDIA GPU, and this torch ({torch.__version__}) sees no CUDA device")


def _cuda_index(device: int | str) -> int:
    parsed = torch.device(f"cuda:{device}" if isinstance(device, int) else device)
    if parsed.type != "cuda":
        raise KasfError(f"TensorRT runs on a CUDA device, got device '{device}'")
    return parsed.index or 0


def build_engine(onnx_path: str | Path, engine_path: str | Path, min_batch: int = 1, opt_batch: int = 32,
                 max_batch: int = 256, workspace_gib: float = 4.0, optimization_level: int = 3,
                 timing_cache: str | Path | None = None) -> BuiltEngine:
    """Build a TensorRT plan from kasf's ONNX graph for batches min_batch..max_batch (tuned for
    opt_batch). timing_cache: loaded when the file exists, written back after the build."""
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    meta = _onnx_metadata(onnx_path)
    check_profile(min_batch, opt_batch, max_batch)
    if workspace_gib <= 0:
        raise KasfError(f"the workspace must be a positive number of GiB, got {workspace_gib}")
    if not 0 <= optimization_level <= 5:
        raise KasfError(f"the builder optimisation level is 0 to 5, got {optimization_level}")
    if engine_path.is_dir():
        raise KasfError(f"output {engine_path} is a directory; name the .engine file to write")
    trt = import_tensorrt()
    _require_cuda("building a TensorRT engine")
    device = torch.cuda.current_device()  # where TensorRT builds
    io, config_dict = meta["kasf_io"], meta["kasf_model_config"]
    input_name, output_name = io["input"], io["output"]
    sample = [config_dict["n_frames"], 17, 3]
    profile_shapes = {"min": [min_batch, *sample], "opt": [opt_batch, *sample], "max": [max_batch, *sample]}
    precision = meta.get("kasf_precision", "fp32")
    strong_flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    typing = network_typing(trt.__version__, strong_flag is not None)
    major = int(trt.__version__.split(".")[0])

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # TensorRT 11 ignores (and deprecates) the flag: its networks are strongly typed anyway.
    network = builder.create_network(1 << int(strong_flag) if strong_flag is not None and major < 11 else 0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise KasfError(f"TensorRT {trt.__version__} cannot parse {onnx_path}: {errors or 'no reason given'}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    config.builder_optimization_level = optimization_level
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    config.clear_flag(trt.BuilderFlag.TF32)
    if typing == WEAK_FP16_FLAG and precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, *(tuple(profile_shapes[k]) for k in ("min", "opt", "max")))
    config.add_optimization_profile(profile)
    cache_path = Path(timing_cache) if timing_cache else None
    if cache_path is not None:
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)

    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    build_seconds = time.perf_counter() - started
    if serialized is None:
        raise KasfError(f"TensorRT {trt.__version__} could not build {onnx_path} (its log above says why; "
                        "a larger --workspace helps when it ran out of memory)")
    plan = bytes(serialized)
    if cache_path is not None:
        cache_bytes = bytes(config.get_timing_cache().serialize())
        atomic_write(cache_path, lambda tmp: Path(tmp).write_bytes(cache_bytes))
    information = _engine_information(trt, logger, plan, input_name, profile_shapes["opt"])
    report = precision_report(information)

    sidecar = {
        "format": SIDECAR_FORMAT, "format_version": SIDECAR_VERSION, "kasf_version": __version__,
        "tensorrt_version": trt.__version__, "gpu_name": torch.cuda.get_device_name(device),
        "compute_capability": compute_capability_text(torch.cuda.get_device_capability(device)),
        "network": typing, "tf32": False, "precision": precision,
        "input": input_name, "output": output_name, "profile": profile_shapes,
        "builder": {"workspace_gib": workspace_gib, "optimization_level": optimization_level,
                    "timing_cache": None if cache_path is None else str(cache_path),
                    "build_seconds": round(build_seconds, 2)},
        "model_config": config_dict,
        "onnx": {"path": str(onnx_path), "sha256": file_sha256(onnx_path)},
        "kasf_metadata": meta,
        "engine_sha256": _sha256_bytes(plan), "engine_bytes": len(plan),
        "precision_report": report,
    }
    atomic_write(engine_path, lambda tmp: Path(tmp).write_bytes(plan))
    atomic_write(layers_path(engine_path), lambda tmp: Path(tmp).write_text(json.dumps(information, indent=1)))
    atomic_write(sidecar_path(engine_path), lambda tmp: Path(tmp).write_text(json.dumps(sidecar, indent=2)))
    return BuiltEngine(engine_path, sidecar_path(engine_path), layers_path(engine_path), sidecar)


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


class TensorRTEngine(Engine):
    backend = "tensorrt"

    def __init__(self, path: str | Path, device: int | str = 0, cuda_graphs: bool = False):
        """device: a CUDA device index or "cuda:N". cuda_graphs: capture one CUDA graph per batch
        size, each with its own execution context (a graph fixes shapes and addresses; each context
        holds its own activation memory)."""
        path = Path(path)
        if not path.is_file():
            raise KasfError(f"TensorRT engine {path} does not exist")
        trt = import_tensorrt()
        sidecar = read_sidecar(path)
        _require_cuda("running a TensorRT engine")
        device = _cuda_index(device)
        self.notes = check_engine_compatibility(sidecar, trt.__version__, torch.cuda.get_device_name(device),
                                                torch.cuda.get_device_capability(device))
        plan = path.read_bytes()
        if sidecar.get("engine_sha256") != _sha256_bytes(plan):
            raise KasfError(f"{path} is not the plan its sidecar {sidecar_path(path).name} describes (SHA-256 "
                            "differs): rebuild it with `kasf build`")
        super().__init__(sidecar["model_config"]["n_frames"], sidecar["precision"])
        self.path, self.sidecar, self.device, self.cuda_graphs = path, sidecar, torch.device("cuda", device), cuda_graphs
        self.input_name, self.output_name = sidecar["input"], sidecar["output"]
        with torch.cuda.device(device):
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(plan)
            if self.engine is None:
                raise KasfError(f"TensorRT {trt.__version__} could not deserialise {path} (its log above says why)")
            self._check_io(trt)
            low, _, high = self.engine.get_tensor_profile_shape(self.input_name, 0)
            self.min_batch, self.max_batch = int(low[0]), int(high[0])
            self.context = self.engine.create_execution_context()
            self.stream = torch.cuda.Stream(device)
            shape = (self.max_batch, self.n_frames, 17, 3)
            self._device_input = torch.empty(shape, dtype=torch.float32, device=f"cuda:{device}")
            self._device_output = torch.empty(shape, dtype=torch.float32, device=f"cuda:{device}")
            self._host_input = torch.empty(shape, dtype=torch.float32, pin_memory=True)
            self._host_output = torch.empty(shape, dtype=torch.float32, pin_memory=True)
        self._context_batch = 0
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, Any]] = {}

    def _check_io(self, trt) -> None:
        names = {self.engine.get_tensor_name(i): self.engine.get_tensor_mode(self.engine.get_tensor_name(i))
                 for i in range(self.engine.num_io_tensors)}
        expected = {self.input_name: trt.TensorIOMode.INPUT, self.output_name: trt.TensorIOMode.OUTPUT}
        if names != expected:
            raise KasfError(f"{self.path} has I/O tensors {sorted(names)}, its sidecar says input "
                            f"{self.input_name!r} and output {self.output_name!r}: rebuild it with `kasf build`")
        for name in names:
            if self.engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise KasfError(f"{self.path}'s tensor {name!r} is {self.engine.get_tensor_dtype(name)}, kasf's "
                                "engines take and give float32: build it from a kasf ONNX export")

    def _bind(self, context, batch: int) -> None:
        if not context.set_input_shape(self.input_name, (batch, self.n_frames, 17, 3)):
            raise KasfError(f"TensorRT refused input shape [{batch}, {self.n_frames}, 17, 3] for {self.path}")
        for name, buffer in ((self.input_name, self._device_input), (self.output_name, self._device_output)):
            if not context.set_tensor_address(name, buffer.data_ptr()):
                raise KasfError(f"TensorRT refused the device buffer of {name!r} for {self.path}")

    def _enqueue(self, context) -> None:
        if not context.execute_async_v3(stream_handle=self.stream.cuda_stream):
            raise KasfError(f"TensorRT failed to run {self.path} (its log above says why)")

    def _capture(self, batch: int):
        """TensorRT must run once after a shape change before its enqueue can be captured."""
        context = self.engine.create_execution_context()
        self._bind(context, batch)
        self._enqueue(context)
        self.stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
            self._enqueue(context)
        self._graphs[batch] = (graph, context)
        return self._graphs[batch]

    def _infer(self, keypoints: torch.Tensor) -> np.ndarray:
        batch = len(keypoints)
        if not self.min_batch <= batch <= self.max_batch:
            raise InputError(f"batch {batch} is outside this engine's profile ({self.min_batch} to {self.max_batch}): "
                             "split the batch, or rebuild with `kasf build --min-batch/--max-batch`")
        host_input, host_output = self._host_input[:batch], self._host_output[:batch]
        host_input.copy_(keypoints)
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            self._device_input[:batch].copy_(host_input, non_blocking=True)
            self._runner(batch)()
            host_output.copy_(self._device_output[:batch], non_blocking=True)
        self.stream.synchronize()
        return host_output.numpy().copy()

    def _runner(self, batch: int):
        """What runs the engine on the device buffers for this batch: a graph replay, or an enqueue
        on the shared context bound to the batch's shape."""
        if self.cuda_graphs:
            return (self._graphs.get(batch) or self._capture(batch))[0].replay

        def enqueue() -> None:
            if batch != self._context_batch:
                self._bind(self.context, batch)
                self._context_batch = batch
            self._enqueue(self.context)
        return enqueue

    def compute_timer(self, batch: int):
        with torch.cuda.device(self.device):
            run = self._runner(batch)
        return lambda: cuda_event_seconds(run, self.stream)

    def metadata(self) -> dict:
        return {**super().metadata(), "path": str(self.path), "tensorrt_version": self.sidecar["tensorrt_version"],
                "gpu_name": self.sidecar["gpu_name"], "batch_range": [self.min_batch, self.max_batch],
                "cuda_graphs": self.cuda_graphs, "model_config": self.sidecar["model_config"], "notes": self.notes}

    def close(self) -> None:
        """Graphs and contexts go before the engine, the engine before the runtime."""
        self._graphs.clear()
        self.context = None
        self.engine = None
