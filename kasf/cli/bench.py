"""`kasf bench` (and benchmarks/bench.py): engines timed side by side, one table, bench.json/.csv/.png."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..bench import (PARITY_CLIPS, BenchSettings, checkpoint_specs, format_speedups, format_table, parse_engine_spec,
                     run_benchmark, write_report)
from .arguments import add_budget_argument, add_timing_arguments, parse_budgets, timing_settings

HELP = "time engines side by side, interleaved (trtexec conventions)"
DESCRIPTION = ("Time engines interleaved round by round over a batch sweep; print one table (latency, throughput, "
               "parity in mm, GFLOP/s against the measured matmul peak); write bench.json, .csv, .png.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--engine", nargs="+", metavar="FILE[:key=value,...]",
                        help="model files to time (.onnx, .engine/.plan, .pt/.pth, .pt2), each with options for its "
                             "backend, e.g. model.pt:device=cuda,precision=fp16,cuda_graphs=true, "
                             "model.onnx:provider=cuda, x.bin:backend=onnxruntime")
    source.add_argument("--checkpoint", help="export what this machine can run from this checkpoint (ONNX FP32 and "
                                             "FP16, PyTorch eager; on a GPU also its CUDA variants) and time it all")
    parser.add_argument("--config", help="the authors' YAML (for their checkpoints)")
    parser.add_argument("--reference", help="checkpoint for the parity column (default: --checkpoint, or each "
                                            "engine's .pt/.pth of the same model among the engines)")
    add_timing_arguments(parser)
    parser.add_argument("--parity-clips", type=int, default=PARITY_CLIPS,
                        help=f"motion-capture test clips for the parity column (default {PARITY_CLIPS}; 0: none)")
    add_budget_argument(parser)
    parser.add_argument("--out", default="runs/bench", help="where the exports, bench.json/.csv/.png go")


def run(args: argparse.Namespace) -> int:
    settings = BenchSettings(**timing_settings(args), config=args.config,
                             reference=args.reference or args.checkpoint, parity_clips=args.parity_clips,
                             budgets=parse_budgets(args.budget))
    out = Path(args.out)
    failed: list[dict] = []
    if args.checkpoint:
        specs, failed = checkpoint_specs(args.checkpoint, args.config, out)
    else:
        specs = [parse_engine_spec(text) for text in args.engine]
    report = run_benchmark(specs, settings, failed)
    print(format_table(report))
    for line in format_speedups(report):
        print(line)
    for note in report["notes"]:
        print(f"note: {note}")
    paths = write_report(report, out)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0 if any(r["status"] == "ok" for r in report["rows"]) else 1
