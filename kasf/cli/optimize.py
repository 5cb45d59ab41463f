"""`kasf optimize`: the fastest engine for a checkpoint within the parity budget, chosen by measuring."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..bench import BenchSettings
from ..optimize import DEVICES, PARITY_CLIPS, format_candidates, optimize, write_report
from .arguments import add_budget_argument, add_timing_arguments, parse_budgets, timing_settings

HELP = "make every engine this machine can run, keep the fastest within the parity budget"
DESCRIPTION = ("Export and build every candidate for the device (ONNX Runtime FP32, INT8 QDQ, PyTorch BF16, "
               "AOTInductor FP32 and BF16, TensorRT on a GPU), check each one's parity against PyTorch FP32 within "
               "its precision's budget, time them interleaved beside PyTorch FP32 eager, and write the fastest "
               "that passes as DIR/best.<suffix> with DIR/best.json; report.md and report.json hold one row per "
               "candidate. Exit code 1 when no candidate passes (nothing is written as best).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a kasf checkpoint, or the authors' with --config")
    parser.add_argument("--config", help="the authors' YAML (for their checkpoints)")
    chosen = parser.add_argument_group("candidates")
    chosen.add_argument("--device", choices=DEVICES, default="cpu", help="where the engines run (default cpu)")
    chosen.add_argument("--include", nargs="+", default=[], metavar="TEXT",
                        help="only the candidates whose name holds one of these (e.g. onnxruntime 'bf16'); "
                             "PyTorch FP32 eager, the baseline, always runs")
    parity = parser.add_argument_group("parity")
    parity.add_argument("--parity-clips", type=int, default=PARITY_CLIPS,
                        help=f"motion-capture test clips each candidate is checked on (default {PARITY_CLIPS})")
    add_budget_argument(parity)
    add_timing_arguments(parser)
    parser.add_argument("--out", default="runs/optimize", help="where the candidates, best.* and the report go")


def run(args: argparse.Namespace) -> int:
    settings = BenchSettings(**timing_settings(args), parity_clips=args.parity_clips,
                             budgets=parse_budgets(args.budget))
    report = optimize(args.checkpoint, args.out, args.device, settings, include=args.include, config=args.config)
    print(format_candidates(report))
    for note in report["bench"]["notes"]:
        print(f"note: {note}")
    paths = write_report(report, Path(args.out))
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0 if report["winner"] else 1
