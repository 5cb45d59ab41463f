"""The `kasf` command line: thin subcommands over library calls.

Exit codes: 0 success, 1 a kasf error (bad input, file or config; the message says which),
2 bad command-line usage.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from . import __version__
from .checkpoint import build_from_checkpoint, convert_authors_checkpoint, read_checkpoint, unused_authors_parameters
from .config import PRESETS
from .errors import KasfError
from .model import build_model

EXAMPLES = """examples:
  kasf info --preset paper
  kasf info checkpoint.pt
  kasf convert their_best.pth --config their_config.yaml -o kasf_model.pt
"""


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def cmd_info(args: argparse.Namespace) -> int:
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
    total = _count(model)
    print(f"parameters     {total:,} (the authors' code builds {total + unused_authors_parameters(config):,}: "
          f"{unused_authors_parameters(config):,} more in LayerNorms no output depends on)")
    for name in ("limb_fus", "blocks", "head"):
        print(f"  {name:<12} {_count(getattr(model, name)):,}")
    if args.threads:
        torch.set_num_threads(args.threads)
    clip = torch.zeros(args.batch, config.n_frames, 17, 3)
    clip[..., 2] = 1.0
    with torch.inference_mode():
        model(clip)
        timings = []
        for _ in range(args.runs):
            start = time.perf_counter()
            model(clip)
            timings.append(time.perf_counter() - start)
    timings.sort()
    print(f"forward        batch {args.batch}, {args.runs} runs on CPU ({torch.get_num_threads()} threads): "
          f"median {1e3 * timings[len(timings) // 2]:.1f} ms, min {1e3 * timings[0]:.1f} ms")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    path = convert_authors_checkpoint(args.checkpoint, args.config, args.output)
    model = build_from_checkpoint(read_checkpoint(path))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {_count(model):,} parameters)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kasf", description=__doc__.splitlines()[0], epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"kasf {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("info", help="describe a preset or checkpoint and time one forward pass")
    source = info.add_mutually_exclusive_group()
    source.add_argument("checkpoint", nargs="?", help="a kasf or authors' checkpoint")
    source.add_argument("--preset", choices=sorted(PRESETS), default="paper", help="a named config (default paper)")
    info.add_argument("--config", help="the authors' YAML (needed for their checkpoints)")
    info.add_argument("--batch", type=int, default=1, help="clips per forward pass (default 1)")
    info.add_argument("--runs", type=int, default=5, help="timed forward passes (default 5)")
    info.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    info.set_defaults(run=cmd_info)

    convert = commands.add_parser("convert", help="turn an authors' checkpoint into a kasf checkpoint")
    convert.add_argument("checkpoint", help="the authors' .pth (their training dict or state dict)")
    convert.add_argument("--config", required=True, help="their training YAML (hyper-parameters)")
    convert.add_argument("-o", "--output", required=True, help="the kasf checkpoint to write (.pt)")
    convert.set_defaults(run=cmd_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KasfError as err:
        print(f"kasf {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
