"""Triton Inference Server model repositories, for serving past one process or one machine.

`export_triton` turns one exported model into `<repository>/<name>/config.pbtxt` plus
`<name>/1/model.plan` (a TensorRT engine, platform "tensorrt_plan") or `<name>/1/model.onnx`
(a kasf ONNX graph, platform "onnxruntime_onnx"), with dynamic batching. The config is built as
the ModelConfig protobuf of tritonclient's schema and parsed back after writing, so a config Triton
would reject fails here, without a server. The model directory is staged next to its final place
and renamed into it, so a crash never leaves half a model in the repository.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import KasfError
from ..keypoints.skeleton import NUM_JOINTS

# Suffix of the exported model -> Triton platform and the file name Triton looks for.
FORMATS = {
    ".onnx": ("onnxruntime_onnx", "model.onnx"),
    ".engine": ("tensorrt_plan", "model.plan"),
    ".plan": ("tensorrt_plan", "model.plan"),
}
KINDS = ("gpu", "cpu")
DEFAULT_NAME = "kasportsformer"
DEFAULT_ONNX_MAX_BATCH = 64   # an ONNX graph's batch axis has no upper bound: this is Triton's cap
DEFAULT_QUEUE_DELAY_US = 100
VERSION = "1"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class TritonError(KasfError):
    """A model that cannot be put into a Triton repository as asked."""


@dataclass
class ModelSignature:
    """What the config needs from a model file: tensor names, per-clip dims, batch range and
    precision; where they were read (source) and what the server must match (note)."""
    input: str
    output: str
    dims: list[int]
    max_batch: int | None
    precision: str
    source: str = ""
    note: str = ""


@dataclass
class TritonModel:
    directory: Path
    config_path: Path
    model_path: Path
    config: Any = field(repr=False)   # tritonclient.grpc.model_config_pb2.ModelConfig
    note: str = ""                    # what the server must match to load the model


def _schema():
    """tritonclient's model_config_pb2 (the schema Triton parses config.pbtxt with)."""
    try:
        from tritonclient.grpc import model_config_pb2
    except (ImportError, RuntimeError):   # tritonclient.grpc raises RuntimeError when grpcio is absent
        raise TritonError("Triton export needs the model config schema of tritonclient: "
                          "pip install 'kasf[triton]' (tritonclient[grpc])") from None
    return model_config_pb2


def _check_clip_dims(dims: Sequence[Any], where: str) -> list[int]:
    dims = list(dims)
    if (len(dims) != 3 or not all(isinstance(d, int) for d in dims) or dims[0] < 1
            or dims[1:] != [NUM_JOINTS, 3]):
        raise TritonError(f"{where}: expected per-clip dims [frames, {NUM_JOINTS}, 3], got {dims}")
    return dims


def plan_signature(engine: Path) -> ModelSignature:
    """A kasf TensorRT plan's names, dims and batch range, from the sidecar JSON its builder wrote
    beside it (profile min/opt/max shapes [batch, frames, 17, 3]); the sidecar must be this plan's."""
    from ..model.checkpoint import file_sha256
    from ..engines.tensorrt import read_sidecar, sidecar_path

    sidecar, where = read_sidecar(engine), sidecar_path(engine).name
    if sidecar.get("engine_sha256") != file_sha256(engine):
        raise TritonError(f"{where} describes another plan than {engine.name} (its SHA-256 differs): "
                          "keep each engine with the sidecar its build wrote")
    if not (isinstance(sidecar.get("input"), str) and isinstance(sidecar.get("output"), str)):
        raise TritonError(f"{where} does not name the engine's input and output tensors")
    profile = sidecar.get("profile")
    if not isinstance(profile, dict) or not all(isinstance(profile.get(k), list) and profile[k]
                                                for k in ("min", "opt", "max")):
        raise TritonError(f"{where} has no \"profile\" with \"min\", \"opt\" and \"max\" shapes [batch, frames, 17, 3]")
    shapes = {k: profile[k] for k in ("min", "opt", "max")}
    dims = _check_clip_dims(shapes["max"][1:], f"{where} profile max")
    if any(shape[1:] != dims for shape in shapes.values()):
        raise TritonError(f"{where}: the profile's shapes differ outside the batch axis: {shapes}")
    low, opt, high = (shape[0] for shape in shapes.values())
    if not (isinstance(low, int) and isinstance(opt, int) and isinstance(high, int) and 1 <= low <= opt <= high):
        raise TritonError(f"{where}: the profile's batch sizes must be 1 <= min <= opt <= max, "
                          f"got {low}, {opt}, {high}")
    if low != 1:
        raise TritonError(f"the engine's profile starts at batch {low}, but Triton's dynamic batcher sends batches "
                          "from 1: rebuild the engine with min batch 1")
    note = (f"the plan runs only under a Triton whose TensorRT is {sidecar.get('tensorrt_version', '(unknown)')}, "
            f"on GPUs of compute capability {sidecar.get('compute_capability', '(unknown)')}")
    return ModelSignature(sidecar["input"], sidecar["output"], dims, high, sidecar.get("precision", "unknown"),
                          where, note)


def onnx_signature(path: Path) -> ModelSignature:
    """Read names and dims from a kasf ONNX graph: its kasf_io metadata, checked against the graph itself."""
    import onnx

    from ..export.artifact import read_metadata

    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as err:   # onnx raises DecodeError, OSError ... for a file that is not a graph
        raise TritonError(f"cannot read {path} as an ONNX graph: {err}") from None
    io = read_metadata(graph).get("kasf_io")
    if not isinstance(io, dict):
        raise TritonError(f"{path} has no kasf_io metadata: export it with `kasf export`")
    tensors = {t.name: t for t in [*graph.graph.input, *graph.graph.output]}
    dims = _check_clip_dims(io.get("shape", [])[1:], f"{path} kasf_io")
    for role in ("input", "output"):
        tensor = tensors.get(io.get(role))
        if tensor is None:
            raise TritonError(f"{path}: the graph has no {role} {io.get(role)!r} named in its kasf_io metadata")
        if tensor.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise TritonError(f"{path}: {role} {tensor.name} is not float32")
        shape = tensor.type.tensor_type.shape.dim
        if len(shape) != 4 or shape[0].HasField("dim_value") or [d.dim_value for d in shape[1:]] != dims:
            raise TritonError(f"{path}: {role} {tensor.name} must be [batch, {', '.join(map(str, dims))}] with a "
                              "dynamic batch axis (Triton batches along it)")
    return ModelSignature(io["input"], io["output"], dims, None, read_metadata(graph).get("kasf_precision", "fp32"))


def build_config(name: str, platform: str, signature: ModelSignature, max_batch: int, instances: int, kind: str,
                 preferred_batch_sizes: Sequence[int], max_queue_delay_us: int):
    """The ModelConfig message: batch axis implicit (max_batch_size), FP32 in and out, dynamic batching."""
    pb = _schema()
    config = pb.ModelConfig(name=name, platform=platform, max_batch_size=max_batch)
    config.input.add(name=signature.input, data_type=pb.TYPE_FP32, dims=signature.dims)
    config.output.add(name=signature.output, data_type=pb.TYPE_FP32, dims=signature.dims)
    config.dynamic_batching.SetInParent()
    config.dynamic_batching.preferred_batch_size.extend(preferred_batch_sizes)
    config.dynamic_batching.max_queue_delay_microseconds = max_queue_delay_us
    group_kind = pb.ModelInstanceGroup.KIND_GPU if kind == "gpu" else pb.ModelInstanceGroup.KIND_CPU
    config.instance_group.add(count=instances, kind=group_kind)
    if platform == "onnxruntime_onnx" and signature.precision == "fp16":
        # ONNX Runtime has crashed on FP16 graphs at ORT_ENABLE_ALL (Triton's default): level 1 is EXTENDED.
        config.optimization.graph.level = 1
    return config


def _check_options(path: Path, platform: str, signature: ModelSignature, name: str, max_batch: int | None,
                   instances: int, kind: str, preferred_batch_sizes: Sequence[int], max_queue_delay_us: int) -> int:
    """Refuse what Triton would reject or the model could not run; return the max batch to configure."""
    if not _NAME.fullmatch(name):
        raise TritonError(f"model name {name!r} must be letters, digits, '_', '-' or '.', not starting with '.' or '-'")
    if kind not in KINDS:
        raise TritonError(f"instance kind {kind!r}: choose one of {', '.join(KINDS)}")
    if platform == "tensorrt_plan" and kind != "gpu":
        raise TritonError("a TensorRT engine runs only on a GPU: use instance kind 'gpu' "
                          "(or put the ONNX graph in the repository for CPU instances)")
    if instances < 1:
        raise TritonError(f"instances must be at least 1, got {instances}")
    if max_queue_delay_us < 0:
        raise TritonError(f"max queue delay must be >= 0 microseconds, got {max_queue_delay_us}")
    if max_batch is None:
        max_batch = signature.max_batch or DEFAULT_ONNX_MAX_BATCH
    if max_batch < 1:
        raise TritonError(f"max batch must be at least 1, got {max_batch}")
    if signature.max_batch is not None and max_batch > signature.max_batch:
        raise TritonError(f"max batch {max_batch} exceeds the engine's optimisation profile max {signature.max_batch} "
                          f"({signature.source}): Triton would send batches {path.name} cannot run; ask for at most "
                          f"{signature.max_batch} or rebuild the engine with a larger max batch")
    bad = [b for b in preferred_batch_sizes if not 1 <= b <= max_batch]
    if bad:
        raise TritonError(f"preferred batch sizes {bad} are outside 1..{max_batch} (the max batch)")
    return max_batch


def _stage(directory: Path, config, model: Path, model_name: str) -> None:
    """Write config.pbtxt and <version>/<model_name> into directory, then parse the config back."""
    from google.protobuf import text_format

    pb = _schema()
    (directory / VERSION).mkdir()
    shutil.copyfile(model, directory / VERSION / model_name)
    text = text_format.MessageToString(config)
    (directory / "config.pbtxt").write_text(text)
    try:
        written = text_format.Parse((directory / "config.pbtxt").read_text(), pb.ModelConfig())
    except text_format.ParseError as err:
        raise TritonError(f"the written config.pbtxt does not parse with Triton's schema: {err}") from None
    if written != config:
        raise TritonError("the written config.pbtxt reads back different from the config built")


def export_triton(model_path: str | Path, repository: str | Path, name: str = DEFAULT_NAME,
                  max_batch: int | None = None, instances: int = 1, kind: str = "gpu",
                  preferred_batch_sizes: Sequence[int] = (), max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
                  overwrite: bool = False) -> TritonModel:
    """Put one exported model (.engine/.plan with its sidecar JSON, or a kasf .onnx) into a Triton repository.

    max_batch defaults to the engine profile's max (refused above it) or DEFAULT_ONNX_MAX_BATCH for ONNX.
    An existing model directory is replaced only with overwrite=True.
    """
    path = Path(model_path)
    if path.suffix.lower() not in FORMATS:
        raise TritonError(f"{path.name}: unknown model format {path.suffix!r}; Triton export takes "
                          f"{', '.join(FORMATS)} files")
    if not path.is_file():
        raise TritonError(f"model {path} does not exist")
    platform, model_name = FORMATS[path.suffix.lower()]
    signature = plan_signature(path) if platform == "tensorrt_plan" else onnx_signature(path)
    max_batch = _check_options(path, platform, signature, name, max_batch, instances, kind,
                               preferred_batch_sizes, max_queue_delay_us)
    config = build_config(name, platform, signature, max_batch, instances, kind,
                          sorted(set(preferred_batch_sizes)), max_queue_delay_us)
    repository = Path(repository)
    target = repository / name
    if target.exists() and not overwrite:
        raise TritonError(f"{target} already exists: pass overwrite=True (--force) to replace it")
    try:
        repository.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=repository, prefix=f".{name}.", suffix=".tmp"))
    except OSError as err:
        raise TritonError(f"cannot write into the repository {repository}: {err.strerror}") from None
    try:
        _stage(staging, config, path, model_name)
        _swap_in(staging, target)
    except OSError as err:
        raise TritonError(f"cannot write {target}: {err}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return TritonModel(target, target / "config.pbtxt", target / VERSION / model_name, config, signature.note)


def _swap_in(staging: Path, target: Path) -> None:
    """Rename staging onto target; an old target is moved aside first and restored if that fails."""
    if not target.exists():
        os.replace(staging, target)
        return
    aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
    try:
        os.replace(target, aside / target.name)
        try:
            os.replace(staging, target)
        except OSError:
            os.replace(aside / target.name, target)
            raise
    except OSError:
        aside.rmdir()
        raise
    shutil.rmtree(aside)
