import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from kasf.bench import (BenchSettings, EngineSpec, distinct_labels, format_table, latency_stats, parse_engine_spec,
                        run_benchmark, run_interleaved, speedups, stability_warning, write_report)
from kasf.bench.machine import describe_peak, environment, matmul_peak_gflops, peak_precision
from kasf.hardware import CPU_FLAGS, bf16_unit, cpu_features, int8_unit
from kasf.model.checkpoint import build_from_checkpoint, read_checkpoint, save_checkpoint
from kasf.model.config import PRESETS
from kasf.errors import KasfError
from kasf.export.fuse import fuse
from kasf.export.onnx import export_onnx
from kasf.verify.flops import graph_flops
from kasf.model.kasportsformer import build_model

from conftest import AUTHORS_CHECKPOINT, AUTHORS_YAML

QUICK = dict(warmup_s=0.02, min_iterations=3, min_duration_s=0.2, settle_s=0.001)


def test_rounds_alternate_between_engines():
    calls = []
    runners = {name: (lambda name=name: calls.append(name) or {"latency": 1e-4}) for name in "abc"}
    samples, failures = run_interleaved(runners, warmup_s=0.0, min_iterations=5, min_duration_s=0.0, settle_s=0.0)
    assert not failures
    assert calls == list("abc") * (len(calls) // 3) and len(calls) >= 3 * 6   # warm-up round + 5 timed
    assert all(len(samples[name]["latency"]) == 5 for name in "abc")


def test_a_failing_runner_is_dropped_and_reported():
    def broken():
        raise RuntimeError("out of memory")

    samples, failures = run_interleaved({"ok": lambda: {"latency": 1e-4}, "broken": broken}, **QUICK)
    assert failures == {"broken": "RuntimeError: out of memory"}
    assert len(samples["ok"]["latency"]) >= 3 and samples["broken"] == {}


def test_statistics_of_known_timings():
    stats = latency_stats([i / 1e3 for i in range(1, 101)])   # 1..100 ms
    assert stats["iterations"] == 100 and stats["min_ms"] == pytest.approx(1) and stats["max_ms"] == pytest.approx(100)
    assert stats["mean_ms"] == pytest.approx(50.5) and stats["median_ms"] == pytest.approx(50.5)
    assert stats["p90_ms"] == pytest.approx(90.1) and stats["p99_ms"] == pytest.approx(99.01)
    assert stats["cv"] == pytest.approx(np.std(np.arange(1, 101)) / 50.5)
    with pytest.raises(KasfError, match="no timings"):
        latency_stats([])


def test_cv_warning_fires_on_noisy_timings_only():
    steady = latency_stats([0.010] * 50 + [0.0101] * 50)
    noisy = latency_stats(np.random.default_rng(0).normal(0.010, 0.001, 200).tolist())
    assert stability_warning("steady", steady) is None
    assert "coefficient of variation" in stability_warning("noisy", noisy)


def test_engine_spec_parsing():
    assert parse_engine_spec("model.onnx") == EngineSpec(Path("model.onnx"))
    spec = parse_engine_spec("runs/best.pt:device=cuda,precision=fp16,cuda_graphs=true")
    assert spec.options == {"device": "cuda", "precision": "fp16", "cuda_graphs": True}
    assert parse_engine_spec("x.bin:backend=onnxruntime,threads=2").backend == "onnxruntime"
    assert parse_engine_spec("x.bin:backend=onnxruntime,threads=2").options == {"threads": 2}
    with pytest.raises(KasfError, match="not key=value"):
        parse_engine_spec("model.pt:device=cuda,fp16")


def test_engines_sharing_a_file_name_are_labelled_by_path():
    specs = [parse_engine_spec(text) for text in ("runs/small/model.onnx", "runs/paper/model.onnx", "best.pt",
                                                  "runs/paper/model.onnx:provider=cuda")]
    assert [spec.label for spec in distinct_labels(specs)] == [
        "runs/small/model.onnx", "runs/paper/model.onnx", "best.pt", "model.onnx:provider=cuda"]
    with pytest.raises(KasfError, match="runs/paper/model.onnx is given more than once"):
        distinct_labels(specs + [parse_engine_spec("runs/paper/model.onnx")])


def test_graph_flops_match_torch_flop_counter(tiny_onnx):
    """An independent count: torch's FlopCounterMode on the module that was exported (exactly equal),
    and on the reference model, which the fused graph exceeds by its packed limb MLPs (block-dense
    products): about 11% at this tiny width, about 2% at the paper preset (27.5 GFLOP/clip against
    the reference's 26.9 and the paper's 27.6)."""
    checkpoint = read_checkpoint(AUTHORS_CHECKPOINT, AUTHORS_YAML)
    reference = build_from_checkpoint(checkpoint).eval()
    counted = graph_flops(tiny_onnx)
    assert counted["flops_per_clip"] == graph_flops(tiny_onnx, batch=5)["flops_per_clip"]
    keypoints = torch.rand(3, 27, 17, 3)
    for module, tolerance in ((fuse(reference), 1e-6), (reference, 0.15)):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(keypoints)
        assert counted["flops_per_clip"] == pytest.approx(counter.get_total_flops() / 3, rel=tolerance)


def test_graph_flops_count_the_attention_op_as_its_two_products(tiny_exports):
    matmul_form, op_form = (graph_flops(tiny_exports[name].path) for name in ("fp32", "attention_op"))
    assert op_form["by_op"]["Attention"] > 0 and matmul_form["by_op"]["Attention"] == 0
    assert op_form["flops_per_clip"] == matmul_form["flops_per_clip"]


def test_benchmark_writes_table_json_csv_and_plot(tiny_exports, tmp_path):
    missing = tmp_path / "missing.onnx"
    graphs = [tiny_exports[name].path for name in ("fp32", "attention_op")]
    specs = [EngineSpec(graphs[0]), EngineSpec(graphs[1]), EngineSpec(AUTHORS_CHECKPOINT), EngineSpec(missing)]
    settings = BenchSettings(batches=(1, 2), threads=1, config=AUTHORS_YAML, parity_clips=0, peak_size=256, **QUICK)
    report = run_benchmark(specs, settings, log=lambda message: None)
    rows = report["rows"]
    assert [r["status"] for r in rows if r["engine"] == "missing.onnx"][0].startswith("load failed: KasfError")
    ok = [r for r in rows if r["status"] == "ok"]
    assert {(r["backend"], r["batch"]) for r in ok} == {("onnxruntime", 1), ("onnxruntime", 2), ("torch", 1),
                                                        ("torch", 2)}
    for row in ok:
        assert row["latency"]["iterations"] >= 3 and row["clips_per_s"] > 0
        assert row["frames_per_s"] == pytest.approx(27 * row["clips_per_s"])
        assert row["gflops_per_s"] == pytest.approx(row["flops_per_clip"] * row["clips_per_s"] / 1e9)
    assert len({r["flops_per_clip"] for r in ok}) == 1          # the .pth counted from the same graph config
    assert [s["batch"] for s in speedups(rows)] == [1, 2] and report["peaks"]["cpu/fp32"]["threads"] == 1
    for speedup in speedups(rows):   # against the faster of the two ONNX Runtime graphs
        fastest = min((r for r in ok if r["backend"] == "onnxruntime" and r["batch"] == speedup["batch"]),
                      key=lambda r: r["latency"]["median_ms"])
        assert speedup["onnxruntime"] == fastest["engine"]
    assert "missing.onnx" in format_table(report) and "% peak" in format_table(report)
    paths = write_report(report, tmp_path / "out")
    assert json.loads(paths["json"].read_text())["environment"]["versions"]["kasf"]
    with open(paths["csv"]) as handle:
        lines = list(csv.DictReader(handle))
    assert len(lines) == len(rows)
    assert all(float(line["latency_median_ms"]) > 0 for line in lines if line["status"] == "ok")
    assert matplotlib.image.imread(paths["png"]).shape[-1] in (3, 4)


def test_the_environment_names_the_cpu_units():
    env = environment()
    assert env["cpu_features"] == sorted(cpu_features()) and set(env["cpu_features"]) <= set(CPU_FLAGS)
    assert (env["bf16_unit"], env["int8_unit"]) == (bf16_unit(), int8_unit())


def test_cpu_matmul_peaks_name_their_precision_and_unit():
    """Real products at a tiny size: FP32 sgemm, BF16 by oneDNN, INT8 x INT8 -> INT32 by torch._int_mm."""
    dtypes = {"fp32": "float32", "bf16": "bfloat16", "int8": "int8"}
    peaks = {precision: matmul_peak_gflops("cpu", size=256, repeats=2, precision=precision) for precision in dtypes}
    for precision, peak in peaks.items():
        assert (peak["precision"], peak["dtype"], peak["size"]) == (precision, dtypes[precision], 256), peak
        assert peak["gflops"] > 0, peak
    assert (peaks["bf16"]["unit"], peaks["int8"]["unit"]) == (bf16_unit(), int8_unit())
    assert describe_peak(peaks["bf16"]).startswith("matmul peak on cpu (bf16, 256x256")
    assert describe_peak(peaks["bf16"]).endswith(" GFLOP/s") and describe_peak(peaks["int8"]).endswith(" GOP/s")
    assert matmul_peak_gflops("cpu", size=256, repeats=1)["precision"] == "fp32"   # the CPU's default
    fp16 = matmul_peak_gflops("cpu", size=256, precision="fp16")
    assert fp16["gflops"] is None and "kasf measures fp32, bf16, int8 there" in fp16["unavailable"]


def test_each_engine_precision_maps_to_the_peak_its_products_run_in():
    assert [peak_precision("cpu", p) for p in ("fp32", "fp16", "bf16", "int8")] == ["fp32", "fp32", "bf16", "int8"]
    assert [peak_precision("cuda", p) for p in ("fp32", "fp16", "bf16", "int8")] == ["fp32", "fp16", "bf16", "int8"]


def test_rows_are_shares_of_the_peak_of_their_products(tiny_exports, tmp_path):
    """An FP16 graph on the CPU runs upcast to FP32: its row and the FP32 graph's share the FP32 peak,
    the only one measured."""
    specs = [EngineSpec(tiny_exports[name].path) for name in ("fp32", "fp16")]
    settings = BenchSettings(threads=1, parity_clips=0, peak_size=256, **QUICK)
    report = run_benchmark(specs, settings, log=lambda message: None)
    assert list(report["peaks"]) == ["cpu/fp32"] and report["peaks"]["cpu/fp32"]["precision"] == "fp32"
    peak = report["peaks"]["cpu/fp32"]["gflops"]
    assert {r["precision"] for r in report["rows"]} == {"fp32", "fp16"}
    for row in report["rows"]:
        assert row["peak_precision"] == "fp32"
        assert row["peak_percent"] == pytest.approx(100 * row["gflops_per_s"] / peak)
    table = format_table(report)
    assert table.splitlines()[-1].startswith("  matmul peak on cpu (fp32, 256x256, 1 thread, ")
    with open(write_report(report, tmp_path)["csv"]) as handle:
        assert {line["peak_precision"] for line in csv.DictReader(handle)} == {"fp32"}


def test_speedups_compare_engines_of_the_same_model_only():
    def row(engine, backend, model, median_ms, batch=1):
        return {"engine": engine, "backend": backend, "precision": "fp32", "device": "cpu", "status": "ok",
                "model_config": {"n_layers": model}, "batch": batch, "latency": {"median_ms": median_ms}}

    rows = [row("small.onnx", "onnxruntime", 4, 10.0), row("paper.onnx", "onnxruntime", 26, 150.0),
            row("small.pt", "torch", 4, 20.0), row("paper.pt", "torch", 26, 180.0),
            row("small.pt", "torch", 4, 30.0, batch=2)]
    found = {(s["onnxruntime"], s["torch"]): s["speedup"] for s in speedups(rows)}
    assert found == {("small.onnx", "small.pt"): pytest.approx(2.0), ("paper.onnx", "paper.pt"): pytest.approx(1.2)}


def test_one_run_times_two_models_each_against_its_own(tmp_path):
    """Two models whose files share names: labels by path, parity and the eager ratio per model."""
    specs = []
    for name, layers in (("one_layer", 1), ("two_layers", 2)):
        (tmp_path / name).mkdir()
        torch.manual_seed(layers)
        checkpoint = save_checkpoint(tmp_path / name / "model.pt", build_model(PRESETS["tiny"].replace(n_layers=layers)))
        export_onnx(read_checkpoint(checkpoint), tmp_path / name / "model.onnx")
        specs += [EngineSpec(tmp_path / name / "model.onnx"), EngineSpec(checkpoint)]
    report = run_benchmark(specs, BenchSettings(threads=1, parity_clips=2, peak_size=256, **QUICK),
                           log=lambda message: None)
    ok = {row["engine"]: row for row in report["rows"] if row["status"] == "ok"}
    assert sorted(ok) == sorted(str(spec.path) for spec in specs)
    assert all(row["parity"]["passed"] for row in ok.values()), report["notes"]
    assert set(report["parity"]) == set(ok)
    assert all(abs(row["parity"]["mpjpe_difference_mm"]) < 0.01 for row in ok.values())
    assert sorted((s["onnxruntime"], s["torch"]) for s in report["speedups"]) == [
        (str(tmp_path / name / "model.onnx"), str(tmp_path / name / "model.pt")) for name in ("one_layer", "two_layers")]


def test_cli_bench_runs_as_a_subprocess(tiny_onnx, tmp_path):
    command = [sys.executable, "-m", "kasf.cli.main", "bench", "--engine", str(tiny_onnx),
               f"{tiny_onnx}:provider=nowhere", "--batch", "1", "--warmup", "20", "--duration", "0.2",
               "--iterations", "3", "--settle", "1", "--threads", "1", "--parity-clips", "0", "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "load failed" in result.stdout and "p50 ms" in result.stdout
    statuses = [row["status"] for row in json.loads((tmp_path / "bench.json").read_text())["rows"]]
    assert statuses[0] == "load failed: KasfError: unknown ONNX Runtime provider 'nowhere': choose one of cpu, cuda, " \
                          "tensorrt" and statuses[1] == "ok"
    assert (tmp_path / "bench.png").is_file()


def test_engines_take_turns_after_the_cpu_has_settled():
    """Between two engines' turns the CPU idles settle_s, so one's spinning threads cannot slow the next."""
    calls = []

    def runner(name):
        def run():
            calls.append((name, time.perf_counter()))
            return {"latency": 1e-4}
        return run

    run_interleaved({"a": runner("a"), "b": runner("b")}, warmup_s=0.0, min_iterations=2, min_duration_s=0.0,
                    settle_s=0.05)
    gaps = [later - earlier for (_, earlier), (_, later) in zip(calls, calls[1:])]
    assert min(gaps) >= 0.05


def test_ort_profile_script_breaks_kernel_time_down_by_op(tiny_onnx):
    script = Path(__file__).parents[2] / "benchmarks" / "ort_profile.py"
    done = subprocess.run([sys.executable, str(script), str(tiny_onnx), "--runs", "3", "--threads", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "batch 1, 3 runs: median run" in lines[0] and lines[1].split()[:2] == ["op", "%"]
    shares = {line.split()[0]: float(line.split()[1]) for line in lines[3:]}
    assert "Gemm" in shares and "TopK" in shares and abs(sum(shares.values()) - 100) < 0.5
