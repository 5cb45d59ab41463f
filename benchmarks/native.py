"""The C++ runtime's kasf_bench against `kasf bench` (Python) on the same engine file, side by side.

Both follow trtexec's conventions with the same settings (warm-up by time, then at least N
iterations and at least D seconds; one engine call on host buffers per iteration). Batch sizes
are taken one at a time, the two tools alternating, so machine drift hits both alike. The medians
agree "within noise" when they differ by at most twice the larger of the two runs' standard
deviations (their coefficients of variation times their means).

    python benchmarks/native.py --engine model.pt2 --kasf-bench build/kasf_bench --batch 1 8 32 --threads 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from kasf.bench import MIN_DURATION_S, MIN_ITERATIONS, WARMUP_S
from kasf.table import render_table


def timing_options(args: argparse.Namespace) -> list[str]:
    options = ["--warmup", str(args.warmup), "--iterations", str(args.iterations), "--duration", str(args.duration)]
    return options + (["--threads", str(args.threads)] if args.threads else [])


def python_latency(args: argparse.Namespace, batch: int, work: Path) -> dict:
    out = work / f"python_{batch}"
    subprocess.run([sys.executable, "-m", "kasf", "bench", "--engine", args.engine, "--batch", str(batch),
                    "--parity-clips", "0", "--out", str(out), *timing_options(args)],
                   check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "bench.json").read_text())["rows"][0]["latency"]


def native_latency(args: argparse.Namespace, batch: int, work: Path) -> dict:
    out = work / f"native_{batch}.json"
    subprocess.run([args.kasf_bench, args.engine, "--batch", str(batch), "--json", str(out), *timing_options(args)],
                   check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())["runs"][0]["latency"]


def compare(python: dict, native: dict) -> tuple[float, bool]:
    """(C++ median over Python median - 1, whether that is within twice the larger spread)."""
    difference = native["median_ms"] - python["median_ms"]
    spread = max(python["cv"] * python["mean_ms"], native["cv"] * native["mean_ms"])
    return difference / python["median_ms"], abs(difference) <= 2 * spread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", required=True, help="a model file both runtimes open (.pt2, .onnx, .engine)")
    parser.add_argument("--kasf-bench", default="build/kasf_bench", help="the kasf_bench executable")
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    parser.add_argument("--warmup", type=float, default=1e3 * WARMUP_S, help="ms")
    parser.add_argument("--iterations", type=int, default=MIN_ITERATIONS)
    parser.add_argument("--duration", type=float, default=MIN_DURATION_S, help="seconds per batch size and tool")
    parser.add_argument("--threads", type=int, help="CPU threads of both (default: the backends' choice)")
    parser.add_argument("--json", help="also write the comparison here")
    args = parser.parse_args(argv)
    if not Path(args.kasf_bench).is_file():
        parser.error(f"{args.kasf_bench} does not exist: build the C++ runtime (cmake -S . -B build && "
                     "cmake --build build) or pass --kasf-bench")

    rows, runs = [], []
    with tempfile.TemporaryDirectory() as work:
        for batch in args.batch:
            native = native_latency(args, batch, Path(work))
            python = python_latency(args, batch, Path(work))
            relative, agree = compare(python, native)
            runs.append({"batch": batch, "python": python, "native": native, "relative_difference": relative,
                         "within_noise": agree})
            rows.append((batch, python["median_ms"], native["median_ms"], f"{100 * relative:+.1f}%",
                         python["p99_ms"], native["p99_ms"], f"{100 * python['cv']:.1f}%", f"{100 * native['cv']:.1f}%",
                         "yes" if agree else "NO"))
    print(render_table(["batch", "Python p50 ms", "C++ p50 ms", "C++ vs Python", "Python p99 ms", "C++ p99 ms",
                        "Python CV", "C++ CV", "within noise"], rows,
                       title=f"{args.engine}: `kasf bench` (Python) and kasf_bench (C++), "
                             f"{args.threads or 'default'} threads"))
    if args.json:
        Path(args.json).write_text(json.dumps({"engine": args.engine, "threads": args.threads, "runs": runs}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
