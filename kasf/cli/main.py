"""The `kasf` command line: thin subcommands over library calls, one module per command.

Exit codes: 0 success, 1 a kasf error (bad input, file or config; the message says which),
2 bad command-line usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..errors import KasfError

EXAMPLES = """examples:
  kasf info --preset paper
  kasf info checkpoint.pt
  kasf convert their_best.pth --config their_config.yaml -o kasf_model.pt
  kasf train --preset small --time-limit 15 --out runs/mocap
  kasf train --data sportspose.pkl --preset paper --epochs 800 --out runs/sp
  kasf train --out runs/mocap --resume
  kasf eval runs/mocap/best.pt --flip --json runs/mocap/test.json
  kasf export --checkpoint runs/mocap/best.pt -o model_fp16.onnx --fp16
  kasf export --checkpoint runs/mocap/best.pt -o model.pt2 --aoti
  kasf build model_fp16.onnx -o model_fp16.engine --max-batch 256 --timing-cache trt.cache
  kasf parity --engine model_fp16.engine --reference runs/mocap/best.pt --json parity.json
  kasf parity --engine runs/mocap/best.pt --device cuda --precision fp16 --cuda-graphs
  kasf export-triton model_fp16.engine --repository triton_models --instances 2 --preferred-batch 8 16
  kasf serve model.onnx --threads 2 --instances 2 --preferred-batch 8 16
  kasf bench --checkpoint runs/mocap/best.pt --batch 1 8 32 128 --threads 2
  kasf optimize runs/mocap/best.pt --device cpu --batch 1 8 --threads 2 --out runs/optimize
  kasf realtime --engine model_fp16.engine --fps 60 --mode centred --people 1 8 32
  kasf realtime --engine model.onnx --lag 7 --stride 14 --people 30
  kasf replay model.pt2 --keypoints capture.csv --image-size 1920 1080 -o poses.csv
  kasf lift openpose_json/ --engine model.onnx --video clip.mp4 -o poses.trc -o poses.npz --render lifted.mp4
  kasf latency-accuracy --engine model.onnx --settings 0:1 13:1 7:14 --plot latency.png
  kasf demo --quick --out runs/demo
"""

# command -> its module in kasf.cli: HELP, optional DESCRIPTION and EPILOG, add_arguments(parser), run(args)
COMMANDS = {
    "info": "info", "convert": "convert", "train": "train", "export": "export", "export-triton": "export_triton",
    "eval": "evaluate", "build": "build", "parity": "parity", "bench": "bench", "realtime": "realtime",
    "replay": "replay", "lift": "lift", "latency-accuracy": "latency_accuracy", "optimize": "optimize",
    "serve": "serve", "demo": "demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kasf", description=__doc__.splitlines()[0], epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"kasf {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"{__package__}.{module_name}")
        epilog = getattr(module, "EPILOG", None)
        command = commands.add_parser(
            name, help=module.HELP, description=getattr(module, "DESCRIPTION", None), epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter if epilog else argparse.HelpFormatter)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
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
