"""`kasf demo`: the whole pipeline on the embedded motion capture, one HTML report (kasf.demo)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..demo.run import DemoSettings, format_summary, run_demo

HELP = "the whole pipeline on the embedded motion capture, one HTML report"
DESCRIPTION = ("Train the preset for a time budget, evaluate it on unseen motions, export ONNX FP32/FP16, run every "
               "engine this machine has, check parity, benchmark, replay the streaming runtime, and write "
               "--out/report.html. Finished stages are reused on the next run (--force redoes them).")
EPILOG = """examples:
  kasf demo --quick                       about 5 minutes on a laptop CPU; open runs/demo/report.html
  kasf demo --minutes 30 --out runs/demo30
  kasf demo --quick --force               redo every stage
  kasf demo --device cuda --out runs/demo-gpu
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..model.config import PRESETS

    parser.add_argument("--quick", action="store_true",
                        help="about 2 minutes of training and short timings: the whole demo well under 10 minutes "
                             "on a 2-core CPU")
    parser.add_argument("--out", default="runs/demo", help="where everything goes, report.html too (default runs/demo)")
    parser.add_argument("--force", action="store_true", help="redo every stage, even those finished in --out")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small", help="model preset (default small)")
    parser.add_argument("--minutes", type=float,
                        help="training budget in minutes (default 15; 2 with --quick)")
    parser.add_argument("--device", default="cpu", help="torch device for training and the PyTorch engine (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    # Internal knobs, for the tests' tiny runs.
    hidden = argparse.SUPPRESS
    parser.add_argument("--steps-per-epoch", type=int, help=hidden)
    parser.add_argument("--parity-clips", type=int, help=hidden)
    parser.add_argument("--bench-duration", type=float, help=hidden)
    parser.add_argument("--bench-warmup", type=float, help=hidden)
    parser.add_argument("--bench-iterations", type=int, help=hidden)
    parser.add_argument("--peak-size", type=int, help=hidden)
    parser.add_argument("--people", type=int, nargs="+", help=hidden)
    parser.add_argument("--replay-seconds", type=float, help=hidden)
    parser.add_argument("--strided-people", type=int, nargs="+", help=hidden)
    parser.add_argument("--latency-settings", nargs="+", help=hidden)
    parser.add_argument("--latency-sequences", type=int, help=hidden)
    parser.add_argument("--gif-frames", type=int, help=hidden)
    parser.add_argument("--test-every", type=int, help=hidden)


def _settings(args: argparse.Namespace) -> DemoSettings:
    """The options given; the rest are DemoSettings' defaults (or --quick's)."""
    given = {"preset": args.preset, "device": args.device, "progress": not args.no_progress,
             "minutes": args.minutes, "steps_per_epoch": args.steps_per_epoch, "parity_clips": args.parity_clips,
             "bench_duration_s": args.bench_duration, "bench_warmup_s": args.bench_warmup,
             "bench_iterations": args.bench_iterations, "peak_size": args.peak_size,
             "people": tuple(args.people) if args.people else None, "replay_seconds": args.replay_seconds,
             "strided_people": tuple(args.strided_people) if args.strided_people else None,
             "latency_settings": tuple(args.latency_settings) if args.latency_settings else None,
             "latency_sequences": args.latency_sequences, "gif_frames": args.gif_frames, "test_every": args.test_every}
    given = {key: value for key, value in given.items() if value is not None}
    return DemoSettings.quick(**given) if args.quick else DemoSettings(**given)


def run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    started = time.perf_counter()
    rows = run_demo(args.out, settings, force=args.force)
    print(format_summary(rows, f"kasf demo ({settings.preset} preset, {settings.minutes:g} min of training) in "
                               f"{Path(args.out)}: {time.perf_counter() - started:.0f} s"))
    print(f"open {Path(args.out).resolve() / 'report.html'}")
    return 0
