"""`kasf eval`: the paper's tables (MPJPE, P-MPJPE in mm) for a checkpoint."""

from __future__ import annotations

import argparse

from ..files import write_json
from ..model import load_model
from .arguments import add_data_arguments, load_splits

HELP = "the paper's tables (MPJPE, P-MPJPE in mm) for a checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a kasf or authors' checkpoint")
    parser.add_argument("--config", help="the authors' YAML (for their checkpoints)")
    parser.add_argument("--split", choices=["test", "validation"], default="test", help="default test")
    parser.add_argument("--flip", action="store_true", help="test-time flip augmentation")
    parser.add_argument("--json", help="also write the report as JSON here")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..train.evaluate import evaluate_clips, format_report

    model = load_model(args.checkpoint, args.config, device=args.device)
    clips = getattr(load_splits(args, model.config.n_frames), args.split)
    report = evaluate_clips(model, clips, flip=args.flip, device=args.device)
    flip = " (test-time flip)" if args.flip else ""
    noise = "" if args.noise_px is None else f", noise {args.noise_px:g} px"
    errors = f" with detector errors {args.detector_errors}{noise}" if args.data == "mocap" else ""
    print(format_report(report, f"{args.checkpoint} on {args.data} {args.split}{errors}{flip}"))
    if args.json:
        print(f"wrote {write_json(args.json, report)}")
    return 0
