import json
import subprocess
import sys

import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from kasf.model.checkpoint import file_sha256
from kasf.engines.tensorrt import SIDECAR_FORMAT, SIDECAR_VERSION, sidecar_path
from kasf.errors import KasfError
from kasf.serve.triton import ModelSignature, TritonError, build_config, export_triton


def _read_config(directory):
    return text_format.Parse((directory / "config.pbtxt").read_text(), pb.ModelConfig())


PROFILE = {"min": [1, 27, 17, 3], "opt": [8, 27, 17, 3], "max": [32, 27, 17, 3]}


def _write_sidecar(engine, **changes):
    """The sidecar kasf's TensorRT builder writes beside a plan (the keys Triton export reads)."""
    sidecar = {"format": SIDECAR_FORMAT, "format_version": SIDECAR_VERSION, "tensorrt_version": "10.14.1",
               "compute_capability": "9.0", "precision": "fp16", "input": "keypoints_2d", "output": "poses_3d",
               "profile": PROFILE, "engine_sha256": file_sha256(engine), **changes}
    sidecar_path(engine).write_text(json.dumps({k: v for k, v in sidecar.items() if v is not None}))


@pytest.fixture
def engine(tmp_path):
    """Bytes standing in for a serialized plan (Triton export only copies them) with a sidecar."""
    path = tmp_path / "model_fp16.engine"
    path.write_bytes(b"serialized engine bytes")
    _write_sidecar(path)
    return path


def test_onnx_model_repository(tiny_onnx, tmp_path):
    model = export_triton(tiny_onnx, tmp_path / "repo", instances=2, kind="cpu", preferred_batch_sizes=[8, 4, 8],
                          max_queue_delay_us=250)
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["kasportsformer"]   # nothing staged is left
    assert model.model_path == tmp_path / "repo" / "kasportsformer" / "1" / "model.onnx"
    assert model.model_path.read_bytes() == tiny_onnx.read_bytes()
    config = _read_config(model.directory)
    assert config == model.config
    assert (config.name, config.platform, config.max_batch_size) == ("kasportsformer", "onnxruntime_onnx", 64)
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [("keypoints_2d", pb.TYPE_FP32, [27, 17, 3])]
    assert [(t.name, t.data_type, list(t.dims)) for t in config.output] == [("poses_3d", pb.TYPE_FP32, [27, 17, 3])]
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.dynamic_batching.max_queue_delay_microseconds == 250
    assert [(g.count, g.kind) for g in config.instance_group] == [(2, pb.ModelInstanceGroup.KIND_CPU)]
    assert not config.HasField("optimization")


def test_fp16_onnx_config_keeps_ort_at_extended_optimisation():
    signature = ModelSignature("keypoints_2d", "poses_3d", [27, 17, 3], None, "fp16")
    config = build_config("m", "onnxruntime_onnx", signature, 8, 1, "gpu", [], 0)
    assert config.optimization.graph.level == 1
    assert config.HasField("dynamic_batching")   # present even with nothing to set: batching is on


def test_engine_max_batch_comes_from_its_profile(engine, tmp_path):
    model = export_triton(engine, tmp_path / "repo", name="lifter")
    assert model.model_path.name == "model.plan" and model.model_path.read_bytes() == engine.read_bytes()
    assert "TensorRT is 10.14.1" in model.note and "compute capability 9.0" in model.note
    config = _read_config(model.directory)
    assert (config.platform, config.max_batch_size) == ("tensorrt_plan", 32)
    assert [(g.count, g.kind) for g in config.instance_group] == [(1, pb.ModelInstanceGroup.KIND_GPU)]
    with pytest.raises(TritonError, match="max batch 33 exceeds the engine's optimisation profile max 32"):
        export_triton(engine, tmp_path / "repo", name="other", max_batch=33)
    with pytest.raises(TritonError, match="runs only on a GPU"):
        export_triton(engine, tmp_path / "repo", name="other", kind="cpu")
    with pytest.raises(TritonError, match=r"preferred batch sizes \[64\] are outside 1..32"):
        export_triton(engine, tmp_path / "repo", name="other", preferred_batch_sizes=[16, 64])
    assert not (tmp_path / "repo" / "other").exists()


@pytest.mark.parametrize("changes, message", [
    ({"profile": None}, "has no \"profile\""),
    ({"profile": {**PROFILE, "min": [2, 27, 17, 3]}}, "starts at batch 2"),
    ({"profile": {**PROFILE, "max": [32, 27, 17, 2]}}, r"dims \[frames, 17, 3\]"),
    ({"engine_sha256": "0" * 64}, "describes another plan"),
    ({"input": None}, "does not name the engine's input"),
])
def test_engine_sidecar_problems_are_refused(engine, tmp_path, changes, message):
    _write_sidecar(engine, **changes)
    with pytest.raises(TritonError, match=message):
        export_triton(engine, tmp_path / "repo")


def test_engine_without_its_sidecar_is_refused(engine, tmp_path):
    sidecar_path(engine).unlink()
    with pytest.raises(KasfError, match="has no sidecar model_fp16.engine.json"):
        export_triton(engine, tmp_path / "repo")
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(KasfError, match="not valid JSON"):
        export_triton(engine, tmp_path / "repo")


def test_bad_inputs_are_refused(tiny_onnx, tmp_path):
    repo = tmp_path / "repo"
    with pytest.raises(TritonError, match="unknown model format '.pt'"):
        export_triton(tmp_path / "model.pt", repo)
    with pytest.raises(TritonError, match="does not exist"):
        export_triton(tmp_path / "absent.onnx", repo)
    with pytest.raises(TritonError, match="model name '../up'"):
        export_triton(tiny_onnx, repo, name="../up")
    with pytest.raises(TritonError, match="instances must be at least 1"):
        export_triton(tiny_onnx, repo, instances=0)
    plain = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "plain",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 27, 17, 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 27, 17, 3])]))
    onnx.save(plain, tmp_path / "plain.onnx")
    with pytest.raises(TritonError, match="no kasf_io metadata"):
        export_triton(tmp_path / "plain.onnx", repo)
    assert not repo.exists() or not any(repo.iterdir())


def test_existing_model_is_replaced_only_with_overwrite(tiny_onnx, tmp_path):
    repo = tmp_path / "repo"
    export_triton(tiny_onnx, repo, max_batch=16)
    with pytest.raises(TritonError, match="already exists"):
        export_triton(tiny_onnx, repo, max_batch=8)
    assert _read_config(repo / "kasportsformer").max_batch_size == 16
    export_triton(tiny_onnx, repo, max_batch=8, overwrite=True)
    assert _read_config(repo / "kasportsformer").max_batch_size == 8
    assert sorted(p.name for p in repo.iterdir()) == ["kasportsformer"]


def test_cli(tiny_onnx, tmp_path):
    repo = tmp_path / "repo"
    command = [sys.executable, "-m", "kasf.cli.main", "export-triton", str(tiny_onnx), "--repository", str(repo),
               "--max-batch", "16", "--preferred-batch", "4", "8", "--instances", "2"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert 'platform: "onnxruntime_onnx"' in done.stdout and "tritonserver --model-repository" in done.stdout
    config = _read_config(repo / "kasportsformer")
    assert (config.max_batch_size, list(config.dynamic_batching.preferred_batch_size)) == (16, [4, 8])
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert subprocess.run([*command, "--force"], capture_output=True, text=True).returncode == 0
