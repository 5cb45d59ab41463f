"""`kasf train`: the paper's schedule on the embedded motion capture or SportsPose/WorldPose."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..model import PRESETS, ModelConfig, build_model, resolve_config
from ..model.checkpoint import read_checkpoint_payload
from ..stream.accuracy import parse_setting
from .arguments import add_data_arguments, load_splits, main_process

HELP = "train on the embedded motion capture or SportsPose/WorldPose"
DESCRIPTION = ("Train with the paper's schedule (AdamW 5e-4, warm-up 10 epochs, plateau decay 0.9, early stopping), "
               "selected on validation.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--preset", choices=sorted(PRESETS), default="small", help="model preset (default small)")
    model.add_argument("--config", help="model YAML (kasf's or the authors')")
    parser.add_argument("--out", required=True, help="run directory: best.pt, last.pt, log.csv, tensorboard/")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    parser.add_argument("--epochs", type=int, default=800, help="maximum epochs (default 800)")
    parser.add_argument("--time-limit", type=float, help="minutes; no epoch starts that would end past it")
    parser.add_argument("--batch-size", type=int, default=32, help="global batch (default 32)")
    parser.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (default 5e-4)")
    parser.add_argument("--warmup-epochs", type=int, default=10, help="linear warm-up from lr/100 (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, order and flips (default 0)")
    parser.add_argument("--workers", type=int, default=0, help="data-loading processes (default 0)")
    parser.add_argument("--steps-per-epoch", type=int, help="cap on optimiser steps per epoch")
    parser.add_argument("--no-flip", action="store_true", help="no flip augmentation")
    parser.add_argument("--focus", metavar="LAG:STRIDE",
                        help="a low-latency model: weight the window positions a streaming runtime of this lag and "
                             "stride returns (e.g. 0:1, the newest frame) --focus-weight times in the loss")
    parser.add_argument("--focus-weight", type=float, default=4.0, help="that weight (default 4)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..train import LAST, TrainConfig, fit

    out = Path(args.out)
    if args.resume:
        config = ModelConfig.from_dict(read_checkpoint_payload(out / LAST)["config"])
    else:
        config = resolve_config(args.config or args.preset)
    train_config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_epochs=args.warmup_epochs,
        seed=args.seed, num_workers=args.workers, flip=not args.no_flip, steps_per_epoch=args.steps_per_epoch,
        time_limit_s=None if args.time_limit is None else 60 * args.time_limit,
        focus=None if args.focus is None else parse_setting(args.focus), focus_weight=args.focus_weight)
    splits = load_splits(args, config.n_frames)
    log = print if main_process() else (lambda message: None)
    log(f"clips: train {len(splits.train)}, validation {len(splits.validation)}, test {len(splits.test)}")
    torch.manual_seed(args.seed)
    model = build_model(config)
    result = fit(model, splits, train_config, out, resume=args.resume, device=args.device,
                 progress=not args.no_progress, log=log)
    log(f"stopped by {result.stopped}; best validation MPJPE {result.best_metric:.2f} at epoch "
        f"{result.best_epoch + 1}; checkpoints in {out}")
    return 0
