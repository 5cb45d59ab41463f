"""`kasf optimize` on the tiny fixture model, through the real CLI: it picks the fastest candidate that
passes parity, writes it as best.<suffix> with best.json, and refuses to write a winner when none
passes (exit code 1, the table, no best.*, even where an earlier run left one)."""

import json
import subprocess
import sys

import numpy as np
import pytest

import kasf.hardware
from kasf.bench import BenchSettings
from kasf.optimize import load_best, optimize

from conftest import AUTHORS_CHECKPOINT, AUTHORS_YAML

FAST = ["--parity-clips", "16", "--duration", "0.3", "--warmup", "50", "--iterations", "5", "--threads", "2"]


def run_optimize(out, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kasf", "optimize", str(AUTHORS_CHECKPOINT), "--config",
                           str(AUTHORS_YAML), "--out", str(out), *FAST, *extra],
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def optimized(tmp_path_factory):
    out = tmp_path_factory.mktemp("optimize")
    done = run_optimize(out, "--include", "onnxruntime fp32", "--batch", "1", "2")
    return out, done


def test_it_picks_the_fastest_passing_candidate(optimized):
    out, done = optimized
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((out / "report.json").read_text())
    rows = {c["name"]: c for c in report["candidates"]}
    assert set(rows) == {"torch fp32 cpu", "onnxruntime fp32 cpu", "onnxruntime fp32 cpu attention-op"}
    assert rows["torch fp32 cpu"]["baseline"]
    passing = [c for c in report["candidates"] if not c["baseline"] and c["parity"]["passed"]]
    assert passing, done.stdout
    fastest = max(passing, key=lambda c: c["score"])
    scores = [np.exp(np.mean(np.log([c["speedups"][b] for b in ("1", "2")]))) for c in passing]
    assert max(scores) == pytest.approx(fastest["score"])
    assert report["winner"] == fastest["name"] and fastest["verdict"].startswith("won")
    assert all(c["verdict"].startswith("lost") for c in passing if c is not fastest)
    sidecar = json.loads((out / "best.json").read_text())
    assert sidecar["candidate"] == fastest["name"] and (out / sidecar["file"]).is_file()
    assert f"winner: {fastest['name']}" in done.stdout and "b2 p99 ms" in done.stdout
    assert "kasf optimize on cpu" in (out / "report.md").read_text()


def test_the_winner_loads_as_it_was_measured(optimized):
    out, _ = optimized
    with load_best(out) as engine:
        assert engine.backend == "onnxruntime" and engine.precision == "fp32"
        poses = engine.infer(np.zeros((2, 27, 17, 3), np.float32))
    assert poses.shape == (2, 27, 17, 3) and np.isfinite(poses).all()


def test_no_winner_when_none_passes(optimized, tmp_path):
    stale = tmp_path / "best.onnx"
    stale.write_bytes(b"from an earlier run")
    (tmp_path / "best.json").write_text("{}")
    done = run_optimize(tmp_path, "--include", "onnxruntime fp32 cpu attention", "--budget", "0")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no candidate passed parity within its budget: nothing written as best" in done.stdout
    assert "lost: parity FAIL" in done.stdout and "onnxruntime fp32 cpu attention-op" in done.stdout
    assert not list(tmp_path.glob("best.*"))
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["winner"] is None and report["best"] is None


def test_a_candidate_this_machine_cannot_run_is_a_row_with_its_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(kasf.hardware, "bf16_unit", lambda features=None: None)   # a CPU without BF16 units
    settings = BenchSettings(parity_clips=8, min_duration_s=0.1, warmup_s=0.01, min_iterations=2, threads=1)
    report = optimize(AUTHORS_CHECKPOINT, tmp_path, "cpu", settings, include=["bf16"], config=AUTHORS_YAML,
                      log=lambda line: None)
    rows = {c["name"]: c for c in report["candidates"]}
    assert "AVX-512 BF16" in rows["torch bf16 cpu"]["verdict"] and rows["torch bf16 cpu"]["verdict"].startswith("not run")
    assert report["winner"] is None
