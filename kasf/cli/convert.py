"""`kasf convert`: an authors' checkpoint as a kasf checkpoint."""

from __future__ import annotations

import argparse

from ..model import build_from_checkpoint, convert_authors_checkpoint, count_parameters, read_checkpoint

HELP = "turn an authors' checkpoint into a kasf checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="the authors' .pth (their training dict or state dict)")
    parser.add_argument("--config", required=True, help="their training YAML (hyper-parameters)")
    parser.add_argument("-o", "--output", required=True, help="the kasf checkpoint to write (.pt)")


def run(args: argparse.Namespace) -> int:
    path = convert_authors_checkpoint(args.checkpoint, args.config, args.output)
    model = build_from_checkpoint(read_checkpoint(path))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {count_parameters(model):,} parameters)")
    return 0
