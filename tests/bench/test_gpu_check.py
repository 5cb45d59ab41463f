"""benchmarks/gpu_check.sh, the one call a lent GPU machine runs, checked where there is no GPU: its dry
run exits 0, reports every GPU step skipped and why, lists every step in its summary, and the exact
commands it would run there are accepted by kasf's own command line and engine option checks, and on
the CPU run up to the point where they need the GPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kasf.bench import parse_engine_spec
from kasf.cli import build_parser, main
from kasf.cli.arguments import engine_options
from kasf.engines import backend_for

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
HOST_STEPS = ["install", "environment", "dependencies", "setup", "motion_capture"]
GPU_STEPS = ["gpu_tests", "bench", "realtime", "optimize", "latency_accuracy"]
KASF_STEPS = ["bench", "realtime", "optimize", "latency_accuracy"]
HAS_GPU = torch.cuda.is_available()


def _environment(tmp: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_CHECK_")}
    # No pip install here (kasf is installed already; the script's default installs), tiny
    # checkpoints, and a work directory the tests can read the checkpoints from.
    env.update(GPU_CHECK_SKIP_INSTALL="1", GPU_CHECK_PRESET="tiny", GPU_CHECK_OPTIMIZE_PRESET="tiny",
               GPU_CHECK_WORK=str(tmp / "work"), GPU_CHECK_PYTHON=sys.executable, **extra)
    return env


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """One run of the script into a fresh folder: a dry run here (forced on a GPU machine, where the
    real run is the script's own business)."""
    tmp = tmp_path_factory.mktemp("gpu_check")
    out = tmp / "out"
    command = ["bash", str(SCRIPT), *(["--dry-run"] if HAS_GPU else []), "--bundle", str(tmp / "bundle.tar.gz"),
               str(out)]
    done = subprocess.run(command, cwd=ROOT, env=_environment(tmp), capture_output=True, text=True, timeout=240)
    return done, out, tmp


def _argv(out: Path, step: str) -> list[str]:
    return (out / "commands" / f"{step}.argv").read_text().splitlines()


def _kasf_arguments(out: Path, step: str) -> list[str]:
    argv = _argv(out, step)
    assert argv[:3] == [sys.executable, "-m", "kasf"], argv
    return argv[3:]


def test_dry_run_exits_0_and_skips_every_gpu_step_saying_why(dry_run):
    done, out, tmp = dry_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    reason = "dry run (--dry-run)" if HAS_GPU else "no CUDA GPU ("
    for step in GPU_STEPS:
        assert f"{step}: skipped (skipped: {reason}" in done.stdout
        assert f"{step}: would run: " in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] and summary["passed"] and summary["failed"] == []
    assert [s["name"] for s in summary["steps"]] == HOST_STEPS + GPU_STEPS
    for s in summary["steps"]:
        assert (out / s["command"]).is_file()
        if s["kind"] == "gpu":
            assert s["status"] == "skipped" and s["message"].startswith(f"skipped: {reason}")
        elif s["name"] == "install":
            assert s["status"] == "skipped" and "GPU_CHECK_SKIP_INSTALL" in s["message"]
        else:
            assert s["status"] == "ok" and s["exit_code"] == 0 and (out / s["log"]).is_file(), s
    table = (out / "summary.txt").read_text()
    for step in HOST_STEPS + GPU_STEPS:
        assert f"\n{step} " in table
    environment = json.loads((out / "environment.json").read_text())
    assert environment["versions"]["torch"] == torch.__version__
    assert Path(environment["versions"]["kasf_path"]) == ROOT / "kasf"
    assert (out / "pip_freeze.txt").read_text().strip()
    assert "ok       torch" in (out / "dependencies.txt").read_text()
    assert (tmp / "work" / "tiny_random.pt").is_file()
    assert (tmp / "bundle.tar.gz").stat().st_size > 0


def test_the_kasf_commands_parse_and_their_engine_options_are_the_backends(dry_run):
    _, out, tmp = dry_run
    parser = build_parser()
    parsed = {}
    for step in KASF_STEPS:
        arguments = _kasf_arguments(out, step)
        try:
            parsed[step] = parser.parse_args(arguments)
        except SystemExit:
            pytest.fail(f"kasf refuses the {step} command of gpu_check.sh: kasf {' '.join(arguments)}")
    bench = parsed["bench"]
    assert bench.command == "bench" and bench.batch == [1, 8, 32, 128]
    specs = [parse_engine_spec(text) for text in bench.engine]
    assert [dict(spec.options) for spec in specs] == [
        {"device": "cuda"}, {"device": "cuda", "precision": "fp16"},
        {"device": "cuda", "precision": "fp16", "cuda_graphs": True}]
    for spec in specs:
        assert spec.path.is_file()
        backend_for(spec.path, spec.backend).check_options(dict(spec.options))
    for step in ("realtime", "latency_accuracy"):
        args = parsed[step]
        backend = backend_for(args.engine, args.backend)
        options = backend.check_options(engine_options(args, backend.name))
        assert options == {"device": "cuda", "precision": "fp16", "cuda_graphs": True}
    assert parsed["realtime"].json.startswith(str(out))
    assert parsed["latency_accuracy"].plot.endswith(".png")
    optimize = parsed["optimize"]
    assert optimize.device == "cuda" and optimize.batch == [1, 8] and Path(optimize.checkpoint).is_file()


@pytest.mark.skipif(HAS_GPU, reason="with a GPU these commands would run for real: that is gpu_check.sh's own run")
@pytest.mark.filterwarnings("ignore:No artists with labels")   # bench.png of a run where nothing loaded
def test_the_kasf_commands_run_on_the_cpu_until_they_need_the_gpu(dry_run, capsys):
    """Each command, run as written, gets past its arguments, the engine options and the files and
    stops only where the GPU is missing."""
    _, out, tmp = dry_run
    assert main(_kasf_arguments(out, "bench")) == 1
    rows = json.loads((out / "bench" / "bench.json").read_text())["rows"]
    assert len(rows) == 3
    for row in rows:
        assert row["status"].startswith("load failed: KasfError: device 'cuda' asked for") \
            and "sees no CUDA device" in row["status"], row["status"]
    capsys.readouterr()
    for step in ("realtime", "latency_accuracy", "optimize"):
        assert main(_kasf_arguments(out, step)) == 1
        error = capsys.readouterr().err
        assert "no CUDA device" in error and "option" not in error, (step, error)


def test_the_gpu_tests_command_collects_the_cuda_tests(dry_run):
    _, out, tmp = dry_run
    argv = _argv(out, "gpu_tests")
    assert argv[:3] == [sys.executable, "-m", "pytest"] and "-rs" in argv
    files = [a for a in argv if a.endswith(".py")]
    assert files and "tests/bench/test_gpu_check.py" not in files
    for name in files:
        assert "cuda" in (ROOT / name).read_text().lower()
    junit = next(a for a in argv if a.startswith("--junitxml="))
    assert junit == f"--junitxml={out / 'gpu_tests.xml'}"
    collect = [a for a in argv if not a.startswith("--junitxml=")] + ["--collect-only"]   # -q: one id a line
    done = subprocess.run(collect, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    assert {line.split("::")[0] for line in collected} == set(files)


def test_prepare_carries_the_motion_capture_where_pybullet_is_missing(tmp_path):
    pytest.importorskip("pybullet_data")
    carry = tmp_path / "carry"
    done = subprocess.run(["bash", str(SCRIPT), "--prepare", str(carry)], cwd=ROOT, env=_environment(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    site = carry / "site"
    assert len(list((site / "pybullet_data" / "data" / "motions").glob("humanoid3d_*.txt"))) == 15
    # As on the GPU machine: no pybullet, the carried folder on PYTHONPATH (the real package is hidden).
    probe = f"""
import importlib.machinery, sys
class OnlyCarried:
    def find_spec(self, name, path=None, target=None):
        if name == "pybullet_data":
            return importlib.machinery.PathFinder.find_spec(name, [{str(site)!r}])
sys.meta_path.insert(0, OnlyCarried())
from kasf.data.mocap.build import find_motion_dir, load_mocap_source
print(find_motion_dir())
print(len(load_mocap_source()["test"]["joint_2d"]))
"""
    found = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr[-3000:]
    motion_dir, frames = found.stdout.split()
    assert Path(motion_dir) == site / "pybullet_data" / "data" / "motions" and int(frames) > 0
