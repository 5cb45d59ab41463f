"""A benchmark run's report: one table for the terminal, and bench.json (everything), bench.csv (one
line per engine and batch) and bench.png (latency and throughput against batch) on disk."""

from __future__ import annotations

import csv
from pathlib import Path

from ..files import atomic_write, write_json
from ..table import render_table
from .machine import describe_peak


TABLE_COLUMNS = ("engine", "backend", "precision", "status", "size MB", "parity", "dMPJPE mm", "batch", "p50 ms",
                 "p99 ms", "clips/s", "frames/s", "GFLOP/s", "% peak", "peak")


def format_table(report: dict) -> str:
    """The run's table, with the title naming the machine and, under it, each peak a "% peak" is a share of."""
    rows = report["rows"]
    gpu = any("compute" in r for r in rows)
    headers = list(TABLE_COLUMNS) + (["compute p50 ms"] if gpu else [])
    lines = []
    for r in rows:
        latency = r.get("latency", {})
        status = r["status"] if len(r["status"]) <= 60 else r["status"][:57] + "..."
        parity = r.get("parity") or {}
        difference = parity.get("mpjpe_difference_mm")
        line = [r["engine"], r.get("backend") or "-", r.get("precision") or "-", status, r.get("size_mb"),
                parity.get("verdict"), None if difference is None else f"{difference:+.3f}", r.get("batch"),
                latency.get("median_ms"), latency.get("p99_ms"), r.get("clips_per_s"), r.get("frames_per_s"),
                r.get("gflops_per_s"), r.get("peak_percent"), r.get("peak_precision")]
        lines.append(line + ([r.get("compute", {}).get("median_ms")] if gpu else []))
    env = report["environment"]
    title = (f"kasf bench: {env['cpu']}, {env['torch_threads']} torch threads"
             f"{', ' + env['gpus'][0]['name'] if env['gpus'] else ''}")
    peaks = [f"  {describe_peak(peak)}" for peak in report["peaks"].values()]
    legend = ["% peak: GFLOP/s (GOP/s in int8) as a share of the matmul peak, measured at the start of the run, "
              "of the precision in column \"peak\":"] if peaks else []
    return "\n".join([render_table(headers, lines, digits=2, title=title)] + legend + peaks)


def format_speedups(report: dict) -> list[str]:
    return [f"batch {s['batch']}: ONNX Runtime FP32 ({s['onnxruntime']}) median {s['onnxruntime_median_ms']:.2f} ms, "
            f"PyTorch FP32 eager ({s['torch']}) {s['torch_median_ms']:.2f} ms: ONNX Runtime is {_times(s['speedup'])}"
            for s in report["speedups"]]


def _times(speedup: float) -> str:
    return f"{speedup:.2f}x faster" if speedup >= 1 else f"{1 / speedup:.2f}x slower"


_CSV_FIELDS = ("engine", "backend", "precision", "device", "status", "size_mb", "batch", "clips_per_s",
               "frames_per_s", "flops_per_clip", "gflops_per_s", "peak_precision", "peak_percent")


def _csv_row(row: dict) -> dict:
    flat = {key: row.get(key) for key in _CSV_FIELDS}
    flat.update({f"parity_{key}": value for key, value in (row.get("parity") or {}).items()})
    for measure in ("latency", "compute", "h2d", "d2h"):
        for key, value in row.get(measure, {}).items():
            flat[f"{measure}_{key}"] = value
    return flat


def plot(report: dict, path: Path) -> None:
    """Median latency and throughput against batch, one line per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency_axes, throughput_axes) = plt.subplots(1, 2, figsize=(11, 4.2))
    ok = [r for r in report["rows"] if r["status"] == "ok"]
    for engine in dict.fromkeys(r["engine"] for r in ok):
        mine = sorted((r for r in ok if r["engine"] == engine), key=lambda r: r["batch"])
        batches = [r["batch"] for r in mine]
        latency_axes.plot(batches, [r["latency"]["median_ms"] for r in mine], marker="o", label=engine)
        throughput_axes.plot(batches, [r["clips_per_s"] for r in mine], marker="o", label=engine)
    for axes, label in ((latency_axes, "median latency (ms)"), (throughput_axes, "throughput (clips/s)")):
        axes.set_xscale("log", base=2)
        axes.set_yscale("log")
        axes.set_xlabel("batch (clips)")
        axes.set_ylabel(label)
        axes.grid(True, which="both", alpha=0.3)
    latency_axes.legend(fontsize=7)
    figure.suptitle(f"kasf bench: {report['environment']['cpu']}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _write_csv(path: str, flat: list[dict]) -> None:
    fields = list(dict.fromkeys(key for row in flat for key in row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(flat)


def write_report(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """bench.json (everything), bench.csv (one line per engine and batch), bench.png (the plot); each
    written atomically, so that an interrupted run leaves no half-written file."""
    out_dir = Path(out_dir)
    paths = {"json": out_dir / "bench.json", "csv": out_dir / "bench.csv", "png": out_dir / "bench.png"}
    write_json(paths["json"], report)
    flat = [_csv_row(r) for r in report["rows"]]
    atomic_write(paths["csv"], lambda tmp: _write_csv(tmp, flat))
    atomic_write(paths["png"], lambda tmp: plot(report, Path(tmp)), suffix=".png")   # savefig's format by suffix
    return paths
