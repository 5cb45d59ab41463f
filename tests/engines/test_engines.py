import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from kasf.model.checkpoint import build_from_checkpoint, save_checkpoint
from kasf.cli import main
from kasf.engines import BACKENDS, backend_for, load_engine, recorded_model
from kasf.engines.onnxruntime import OnnxRuntimeEngine
from kasf.engines.tensorrt import (STRONGLY_TYPED, WEAK_FP16_FLAG, EngineCompatibilityError, build_engine,
                                   check_engine_compatibility, network_typing, precision_report, read_sidecar,
                                   sidecar_path)
from kasf.engines.torch import TorchEngine
from kasf.errors import InputError, KasfError
from kasf.model.kasportsformer import KASportsFormer
from kasf.engines.commands import reproduction_commands
from kasf.verify import check_reference

from conftest import AUTHORS_CHECKPOINT, AUTHORS_YAML

try:
    import tensorrt  # noqa: F401
    HAVE_TENSORRT = True
except ImportError:
    HAVE_TENSORRT = False


@pytest.fixture(scope="module")
def onnx_files(tiny_exports):
    return {precision: export.path for precision, export in tiny_exports.items()}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kasf.cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


# ---------------------------------------------------------------------------------------------- torch

def test_torch_engine_is_the_reference_model(authors_checkpoint, clip, golden):
    model = build_from_checkpoint(authors_checkpoint)
    with TorchEngine(model) as engine:
        assert engine.backend == "torch" and engine.precision == "fp32"
        with torch.no_grad():
            assert np.array_equal(engine.infer(clip), model(clip).numpy())
    assert next(model.parameters()).dtype == torch.float32
    with TorchEngine(AUTHORS_CHECKPOINT, AUTHORS_YAML) as engine:
        assert abs(engine.infer(golden["input"]) - golden["output"]).max() < 1e-5
        assert engine.metadata()["checkpoint"] == str(AUTHORS_CHECKPOINT)


def test_torch_engine_refuses_what_a_cpu_cannot_do(authors_checkpoint):
    model = build_from_checkpoint(authors_checkpoint)
    with pytest.raises(KasfError, match="'fp16' needs a CUDA device"):
        TorchEngine(model, precision="fp16")
    with pytest.raises(KasfError, match="CUDA graphs need a CUDA device"):
        TorchEngine(model, cuda_graphs=True)
    with pytest.raises(KasfError, match="unknown precision 'int8'"):
        TorchEngine(model, precision="int8")
    if not torch.cuda.is_available():
        with pytest.raises(KasfError, match="sees no CUDA device"):
            TorchEngine(model, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (FP16 and CUDA graphs run only there)")
def test_torch_engine_fp16_and_cuda_graphs_on_a_gpu(authors_checkpoint, clip):
    model = build_from_checkpoint(authors_checkpoint)
    with torch.no_grad():
        expected = model(clip).numpy()
    with TorchEngine(model, device="cuda", precision="fp16") as engine:
        half = engine.infer(clip)
    assert half.dtype == np.float32 and abs(half - expected).mean() < 2e-3
    with TorchEngine(model, device="cuda", cuda_graphs=True) as graphs, TorchEngine(model, device="cuda") as plain:
        for batch in (2, 1, 2):
            assert np.allclose(graphs.infer(clip[:batch]), plain.infer(clip[:batch]), atol=1e-6)
        assert sorted(graphs._graphs) == [1, 2]


# ---------------------------------------------------------------------------------------------- loading

def test_load_engine_picks_the_backend_by_suffix(onnx_files, golden, tmp_path):
    with load_engine(onnx_files["fp32"]) as engine:
        assert isinstance(engine, OnnxRuntimeEngine)
        assert abs(engine.infer(golden["input"]) - golden["output"]).max() < 1e-4
    with load_engine(AUTHORS_CHECKPOINT, config=AUTHORS_YAML) as engine:
        assert isinstance(engine, TorchEngine)
    assert backend_for("model.engine").name == backend_for("model.PLAN").name == "tensorrt"
    assert backend_for("best.pt").name == "torch"
    renamed = tmp_path / "graph.bin"
    renamed.write_bytes(onnx_files["fp32"].read_bytes())
    with load_engine(renamed, backend="onnxruntime") as engine:
        assert engine.precision == "fp32"
    assert recorded_model(onnx_files["fp16"])[0]["n_layers"] == 2


def test_load_engine_errors_name_the_problem(onnx_files, tmp_path):
    with pytest.raises(KasfError, match="does not exist"):
        load_engine(tmp_path / "absent.onnx")
    with pytest.raises(KasfError, match=r"cannot tell the backend of .*'\.tflite'.*\.onnx \(onnxruntime\)"):
        load_engine(tmp_path / "model.tflite")
    with pytest.raises(KasfError, match="unknown backend 'openvino'"):
        load_engine(onnx_files["fp32"], backend="openvino")
    with pytest.raises(KasfError, match="the onnxruntime backend has no option 'precision'"):
        load_engine(onnx_files["fp32"], precision="fp16")
    assert set(BACKENDS) == {"onnxruntime", "tensorrt", "torch", "aoti"}


# ---------------------------------------------------------------------------------------------- parity CLI

def test_parity_cli_passes_an_fp32_graph_and_writes_json(onnx_files, tmp_path):
    report_path, plot_path = tmp_path / "parity.json", tmp_path / "parity.png"
    done = run_cli("parity", "--engine", onnx_files["fp32"], "--reference", AUTHORS_CHECKPOINT,
                   "--config", AUTHORS_YAML, "--clips", 32, "--json", report_path, "--plot", plot_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    assert report["passed"] and report["precision"] == "fp32" and report["clips"] == 32
    assert report["decided_by"] == ["task_metric", "floor"] and report["budget_mm"] == 0.05
    assert abs(report["task_metric"]["mpjpe"]["difference_mm"]) < 0.01
    assert set(report["floor"]["runs"]) == {"batch_split", "rounding"}
    assert len(report["deviation"]["per_joint_mm"]) == len(report["floor"]["envelope"]["per_joint_mm"]) == 17
    assert "PASS" in done.stdout and "per joint (mm)" in done.stdout and "floor mean" in done.stdout
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    polygraphy, trtexec = report["commands"]
    assert polygraphy.startswith(f"polygraphy run {onnx_files['fp32']} --onnxrt --trt")
    assert f"--onnx={onnx_files['fp32']}" in trtexec and "--shapes=keypoints_2d:32x27x17x3" in trtexec


def test_parity_cli_judges_an_fp16_graph_by_the_fp16_budget_and_floor(onnx_files, tmp_path):
    """The authors'-format fixture (random weights) in FP16: millimetres of deviation on clips where
    the temporal GCN flips neighbours, a verdict that says so, and a budget that can be too tight."""
    report_path = tmp_path / "parity.json"
    done = run_cli("parity", "--engine", onnx_files["fp16"], "--reference", AUTHORS_CHECKPOINT,
                   "--config", AUTHORS_YAML, "--clips", 32, "--budget", "fp32=0.01", "fp16=0.5", "--json", report_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(report_path.read_text())
    assert report["precision"] == "fp16" and report["budget_mm"] == 0.5 and report["passed"]
    assert report["floor"]["unit_roundoff"] == 2 ** -11
    # FP16 rounding, not a broken graph: well under a millimetre on average, far from FP32's agreement.
    assert 0.01 < report["deviation"]["mean_mm"] < 2.0
    assert report["deviation"]["max_mm"] > 1.0 and report["floor"]["envelope"]["max_mm"] > 1.0
    assert "flips a neighbour" in report["explanation"] and report["clips_off_where_floor_flips"] > 0
    assert "--atol 1e-2 --rtol 1e-2 --check-error-stat mean" in report["commands"][0]
    tight = run_cli("parity", "--engine", onnx_files["fp16"], "--reference", AUTHORS_CHECKPOINT,
                    "--config", AUTHORS_YAML, "--clips", 32, "--budget", "fp16=0.0001", "--json", report_path)
    assert tight.returncode == 1
    report = json.loads(report_path.read_text())
    assert report["decided_by"] == ["task_metric"] and report["budget_mm"] == 0.0001
    assert report["clauses"]["floor"]["passed"] and "FAIL: task metric" in tight.stdout
    # With random weights, rounding the reference itself at FP16 moves its MPJPE beyond such a budget.
    assert "the cost is the precision's on this model, not the graph's" in report["explanation"]


def test_parity_cli_takes_a_checkpoint_as_its_own_reference(tmp_path):
    report_path = tmp_path / "parity.json"
    done = run_cli("parity", "--engine", AUTHORS_CHECKPOINT, "--config", AUTHORS_YAML, "--clips", 16,
                   "--json", report_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    assert report["backend"] == "torch" and report["passed"] and report["deviation"]["mean_mm"] == 0.0
    assert report["task_metric"]["mpjpe"]["interval_mm"] == [0.0, 0.0]
    assert report["commands"] == []


def test_parity_cli_fails_weights_that_differ_from_the_reference(authors_checkpoint, tmp_path):
    model = build_from_checkpoint(authors_checkpoint)
    with torch.no_grad():
        model.head.out.weight.add_(1e-3 * torch.randn(model.head.out.weight.shape,
                                                      generator=torch.Generator().manual_seed(0)))
    other = save_checkpoint(tmp_path / "other.pt", model)
    report_path = tmp_path / "parity.json"
    done = run_cli("parity", "--engine", other, "--reference", AUTHORS_CHECKPOINT, "--config", AUTHORS_YAML,
                   "--clips", 16, "--json", report_path)
    assert done.returncode == 1
    report = json.loads(report_path.read_text())
    assert not report["passed"] and "floor" in report["decided_by"]
    assert report["deviation"]["p50_mm"] > 10 * report["floor"]["envelope"]["p50_mm"]
    assert "FAIL: " in done.stdout


def test_parity_cli_errors(authors_checkpoint, onnx_files, tmp_path, capsys):
    assert main(["parity", "--engine", str(onnx_files["fp32"])]) == 1
    assert "holds no PyTorch weights to compare with: pass --reference" in capsys.readouterr().err
    other = save_checkpoint(tmp_path / "other.pt", KASportsFormer(authors_checkpoint.config.replace(dim_rep=32)))
    assert main(["parity", "--engine", str(onnx_files["fp32"]), "--reference", str(other)]) == 1
    assert "another model than the engine (dim_rep: engine 64 vs reference 32)" in capsys.readouterr().err
    assert main(["parity", "--engine", str(tmp_path / "model.tflite"), "--reference", str(other)]) == 1
    assert "cannot tell the backend" in capsys.readouterr().err
    for budget, message in (("fp64=1", "unknown precision 'fp64'"), ("-1", "at least 0"), ("lots", "a number")):
        assert main(["parity", "--engine", str(onnx_files["fp32"]), "--reference", str(AUTHORS_CHECKPOINT),
                     "--config", str(AUTHORS_YAML), "--budget", budget]) == 1
        assert message in capsys.readouterr().err


def test_check_reference_notes_another_source():
    config = {"n_layers": 2, "dim_feat": 32}
    assert check_reference(config, {"sha256": "a" * 64}, config, {"sha256": "a" * 64}) == []
    assert check_reference(config, {}, config, {"sha256": "a" * 64}) == []
    (note,) = check_reference(config, {"file": "mine.pth", "sha256": "b" * 64}, config,
                              {"file": "theirs.pth", "sha256": "a" * 64})
    assert "theirs.pth" in note and "mine.pth" in note


def test_reproduction_commands_repeat_the_engine_profile():
    poly, build, load = reproduction_commands("m.onnx", "keypoints_2d", 27, "fp32", 8, (1, 16, 64), "m.engine")
    assert "--input-shapes keypoints_2d:[8,27,17,3]" in poly and "--trt-max-shapes keypoints_2d:[64,27,17,3]" in poly
    assert "--atol 1e-4" in poly
    assert "--minShapes=keypoints_2d:1x27x17x3" in build and "--optShapes=keypoints_2d:16x27x17x3" in build
    assert "--stronglyTyped" in build and "--noTF32" in build
    assert load == "trtexec --loadEngine=m.engine --shapes=keypoints_2d:8x27x17x3"


# ---------------------------------------------------------------------------------------------- TensorRT, pure parts

SIDECAR = {"tensorrt_version": "10.13.0.35", "gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
           "onnx": {"path": "model_fp16.onnx"}}


def test_engine_compatibility_accepts_the_same_tensorrt_and_gpu():
    assert check_engine_compatibility(SIDECAR, "10.13.0.35", "NVIDIA H100 80GB HBM3", (9, 0)) == []
    (note,) = check_engine_compatibility(SIDECAR, "10.13.0.35", "NVIDIA H100 NVL", (9, 0))
    assert "built on a NVIDIA H100 80GB HBM3, running on a NVIDIA H100 NVL" in note


@pytest.mark.parametrize("version, capability, expected", [
    ("11.0.0.1", (9, 0), ["built with TensorRT 10.13.0.35, this is TensorRT 11.0.0.1"]),
    ("10.13.0.35", (8, 9), ["built for compute capability 9.0 (NVIDIA H100 80GB HBM3), this GPU (GPU) is "
                            "compute capability 8.9"]),
    ("10.12.0.36", (12, 0), ["TensorRT 10.12.0.36", "compute capability 12.0"]),
])
def test_engine_compatibility_refuses_another_tensorrt_or_gpu(version, capability, expected):
    with pytest.raises(EngineCompatibilityError) as error:
        check_engine_compatibility(SIDECAR, version, "GPU", capability)
    message = str(error.value)
    assert all(part in message for part in expected) and "kasf build model_fp16.onnx" in message


def test_engine_compatibility_refuses_a_sidecar_without_the_facts():
    with pytest.raises(EngineCompatibilityError, match="does not say its tensorrt version"):
        check_engine_compatibility({"gpu_name": "GPU", "compute_capability": "9.0"}, "10.13.0.35", "GPU", (9, 0))


def test_network_typing_falls_back_to_the_fp16_flag_only_without_strong_typing():
    assert network_typing("10.13.0.35", True) == STRONGLY_TYPED
    assert network_typing("11.2.0.4", False) == STRONGLY_TYPED
    assert network_typing("10.0.1.6", True) == STRONGLY_TYPED
    assert network_typing("9.3.0.1", False) == WEAK_FP16_FLAG


def _layer(name, kind, outputs, tactic=""):
    return {"Name": name, "LayerType": kind, "TacticName": tactic,
            "Inputs": [{"Name": "in", "Format/Datatype": outputs[0]}],
            "Outputs": [{"Name": f"{name}_out", "Format/Datatype": text} for text in outputs]}


def test_precision_report_counts_fp16_layers_and_finds_fused_attention():
    information = {"Layers": [
        _layer("qkv", "gemm", ["Half"]),
        _layer("__mye12_gemm_mha_v2", "gemm", ["Half"], tactic="_gemm_mha_v2_sm90"),
        _layer("norm", "kgen", ["Float"]),
        _layer("Reformatting CopyNode", "Reformat", ["Row major linear FP16 format"]),
        _layer("__mye1", "signal", ["Float"]),
        {"Name": "topk", "LayerType": "kgen", "Outputs": [{"Format/Datatype": "Float"}, {"Format/Datatype": "Int32"}]},
    ], "Bindings": ["keypoints_2d", "poses_3d"]}
    report = precision_report(information)
    assert report["layers"] == 6 and report["layers_by_precision"] == {"fp16": 2, "fp32": 2}
    assert report["fp16_share"] == 0.5
    assert report["attention_fused"] and report["fused_attention_layers"] == ["__mye12_gemm_mha_v2"]


def test_precision_report_reads_tensorrt_11_fields_and_unfused_attention():
    # TensorRT 11 splits 'Format/Datatype' into 'Format' and 'DataType'.
    information = {"Layers": [
        {"Name": "[MATRIX_MULTIPLY]_[scaled_dot_product_attention]_qk", "LayerType": "gemm",
         "Outputs": [{"Format": "Row major linear FP16 format (kLINEAR)", "DataType": "Half"}]},
        {"Name": "softmax", "LayerType": "kgen", "Outputs": [{"Format": "kLINEAR", "DataType": "Float"}]},
    ], "I/O Tensors": [{"Name": "keypoints_2d", "IOMode": "Input", "DataType": "Float"}]}
    report = precision_report(information)
    assert report["layers_by_precision"] == {"fp16": 1, "fp32": 1} and not report["attention_fused"]
    names_only = precision_report({"Layers": ["qkv", "softmax"]})
    assert names_only["precision"] == "unknown" and not names_only["detailed"] and names_only["layers"] == 2
    assert names_only["note"] == ("precision unknown: the engine holds layer names only (not built with detailed "
                                  "profiling verbosity)")


def test_sidecar_errors(tmp_path):
    plan = tmp_path / "model.engine"
    plan.write_bytes(b"plan")
    with pytest.raises(KasfError, match="has no sidecar model.engine.json"):
        read_sidecar(plan)
    sidecar_path(plan).write_text("{not json")
    with pytest.raises(KasfError, match="is not valid JSON"):
        read_sidecar(plan)
    sidecar_path(plan).write_text(json.dumps({"profile": {}}))
    with pytest.raises(KasfError, match="is not a kasf TensorRT sidecar"):
        read_sidecar(plan)


def test_build_checks_its_arguments_before_tensorrt(onnx_files, tmp_path, capsys):
    with pytest.raises(KasfError, match="1 <= min <= opt <= max, got min 4, opt 2, max 8"):
        build_engine(onnx_files["fp16"], tmp_path / "m.engine", min_batch=4, opt_batch=2, max_batch=8)
    with pytest.raises(KasfError, match="ONNX model .* does not exist"):
        build_engine(tmp_path / "absent.onnx", tmp_path / "m.engine")
    assert main(["build", str(onnx_files["fp16"]), "-o", str(tmp_path / "m.engine"), "--workspace", "0"]) == 1
    assert "workspace must be a positive number of GiB" in capsys.readouterr().err


@pytest.mark.skipif(HAVE_TENSORRT, reason="checks the message shown where TensorRT is not installed")
def test_missing_tensorrt_says_how_to_install_it(onnx_files, tmp_path):
    with pytest.raises(KasfError, match=r"TensorRT is not installed .*pip install 'kasf\[tensorrt\]'"):
        build_engine(onnx_files["fp16"], tmp_path / "m.engine")
    plan = tmp_path / "m.engine"
    plan.write_bytes(b"not a plan")
    with pytest.raises(KasfError, match="TensorRT is not installed"):
        load_engine(plan)


# ---------------------------------------------------------------------------------------------- TensorRT, real

@pytest.fixture(scope="module")
def tensorrt_gpu():
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (NVIDIA's index is unreachable from "
                                                 "kasf's CI machines); these tests need it and a GPU")
    if not torch.cuda.is_available():
        pytest.skip("TensorRT engines need a CUDA GPU")
    return trt


@pytest.fixture(scope="module")
def engines(tensorrt_gpu, onnx_files, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tensorrt")
    cache = folder / "timing.cache"
    return {precision: build_engine(onnx_files[precision], folder / f"tiny_{precision}.engine", min_batch=1,
                                    opt_batch=4, max_batch=16, workspace_gib=1, timing_cache=cache)
            for precision in ("fp32", "fp16")}


def test_tensorrt_build_writes_plan_sidecar_and_precision_report(tensorrt_gpu, engines, onnx_files):
    for precision, built in engines.items():
        sidecar = read_sidecar(built.path)
        assert sidecar == built.sidecar and sidecar["precision"] == precision
        assert sidecar["tensorrt_version"] == tensorrt_gpu.__version__
        assert sidecar["profile"] == {"min": [1, 27, 17, 3], "opt": [4, 27, 17, 3], "max": [16, 27, 17, 3]}
        assert (sidecar["input"], sidecar["output"]) == ("keypoints_2d", "poses_3d")
        assert sidecar["onnx"]["path"] == str(onnx_files[precision]) and sidecar["model_config"]["n_layers"] == 2
        assert built.layers_path.is_file() and sidecar["precision_report"]["detailed"]
    assert engines["fp16"].sidecar["precision_report"]["fp16_share"] > 0  # not an FP32 engine in disguise
    assert engines["fp32"].sidecar["precision_report"]["fp16_share"] == 0
    assert engines["fp32"].sidecar["builder"]["timing_cache"] and \
        engines["fp32"].path.with_name("timing.cache").stat().st_size > 0


def test_tensorrt_engine_runs_within_budget(tensorrt_gpu, engines, authors_checkpoint, clip):
    from kasf.verify import ParityCheck, parity_clips

    # Random weights: rounding the reference itself at FP16 moves its MPJPE by about 0.1-0.2 mm, so
    # FP16 is judged on a budget that leaves room for that (as the ONNX Runtime FP16 test does).
    check = ParityCheck(build_from_checkpoint(authors_checkpoint), parity_clips(32), batch_size=16,
                        budgets={"fp16": 0.5})
    for precision, built in engines.items():
        with load_engine(built.path) as engine:
            report = check.check(engine)
            assert report["passed"], report["explanation"]
            with pytest.raises(InputError, match=r"batch 17 is outside this engine's profile \(1 to 16\)"):
                engine.infer(np.zeros((17, 27, 17, 3), np.float32))
        with load_engine(built.path, cuda_graphs=True) as graphs, load_engine(built.path) as plain:
            for batch in (2, 1, 2):
                assert np.allclose(graphs.infer(clip[:batch]), plain.infer(clip[:batch]), atol=1e-6)


def test_tensorrt_engine_refuses_a_foreign_sidecar(tensorrt_gpu, engines, tmp_path):
    plan = tmp_path / "copy.engine"
    plan.write_bytes(engines["fp32"].path.read_bytes())
    sidecar_path(plan).write_text(json.dumps({**engines["fp32"].sidecar, "tensorrt_version": "9.0.0"}))
    with pytest.raises(EngineCompatibilityError, match="built with TensorRT 9.0.0"):
        load_engine(plan)
    sidecar_path(plan).write_text(json.dumps({**engines["fp32"].sidecar, "engine_sha256": "0" * 64}))
    with pytest.raises(KasfError, match="is not the plan its sidecar"):
        load_engine(plan)
