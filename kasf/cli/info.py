"""`kasf info`: a preset or checkpoint described, and one forward pass timed."""

from __future__ import annotations

import argparse
import time

import torch

from ..model import PRESETS, build_from_checkpoint, build_model, count_parameters, example_keypoints, read_checkpoint
from ..model.checkpoint import unused_authors_parameters

HELP = "describe a preset or checkpoint and time one forward pass"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("checkpoint", nargs="?", help="a kasf or authors' checkpoint")
    source.add_argument("--preset", choices=sorted(PRESETS), default="paper", help="a named config (default paper)")
    parser.add_argument("--config", help="the authors' YAML (needed for their checkpoints)")
    parser.add_argument("--batch", type=int, default=1, help="clips per forward pass (default 1)")
    parser.add_argument("--runs", type=int, default=5, help="timed forward passes (default 5)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")


def run(args: argparse.Namespace) -> int:
    from ..bench.timing import latency_stats, run_interleaved

    if args.checkpoint:
        checkpoint = read_checkpoint(args.checkpoint, args.config)
        model = build_from_checkpoint(checkpoint)
        print(f"checkpoint     {args.checkpoint}")
        for key, value in checkpoint.source.items():
            print(f"  {'source.' + key:<24}{value}")
    else:
        model = build_model(args.preset).eval()
        print(f"preset         {args.preset}")
    config = model.config
    for key, value in config.to_dict().items():
        print(f"  {key:<24}{value}")
    total, unused = count_parameters(model), unused_authors_parameters(config)
    print(f"parameters     {total:,} (the authors' code builds {total + unused:,}: "
          f"{unused:,} more in LayerNorms no output depends on)")
    for name in ("limb_fus", "blocks", "head"):
        print(f"  {name:<12} {count_parameters(getattr(model, name)):,}")
    if args.threads:
        torch.set_num_threads(args.threads)
    clip = example_keypoints(args.batch, config.n_frames)
    with torch.inference_mode():
        samples, _ = run_interleaved({"forward": lambda: {"latency": _seconds(model, clip)}}, warmup_s=0,
                                     min_iterations=args.runs, min_duration_s=0, settle_s=0)
    stats = latency_stats(samples["forward"]["latency"])
    print(f"forward        batch {args.batch}, {args.runs} runs on CPU ({torch.get_num_threads()} threads): "
          f"median {stats['median_ms']:.1f} ms, min {stats['min_ms']:.1f} ms")
    return 0


def _seconds(model, clip) -> float:
    start = time.perf_counter()
    model(clip)
    return time.perf_counter() - start
