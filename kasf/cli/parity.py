"""`kasf parity`: an engine against the PyTorch FP32 reference, in MPJPE and against the noise floor."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engines import backend_for
from ..errors import KasfError
from ..files import write_json
from ..model import build_from_checkpoint, read_checkpoint
from .arguments import add_budget_argument, add_engine_arguments, open_engine, parse_budgets

HELP = "an engine against the PyTorch FP32 reference: MPJPE and the noise floor"
DESCRIPTION = ("Run an engine (.onnx, .engine/.plan, .pt/.pth, .pt2) and the PyTorch FP32 reference on the embedded "
               "motion capture's test clips. It passes when its MPJPE and P-MPJPE differences from the reference "
               "(paired bootstrap 95%% intervals over sequences) lie within the budget of its precision and its "
               "deviation from the reference lies within the reference's own noise floor (exit 1 when it fails; the "
               "report says which clause decided).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", required=True, help="the model file to check")
    parser.add_argument("--reference", help="the checkpoint to compare with (default for a .pt/.pth: itself; "
                                            "required for ONNX and TensorRT engines)")
    parser.add_argument("--clips", type=int, help="test clips to compare on, spread over the test motions (default: "
                                                  "all 256)")
    parser.add_argument("--batch-size", type=int, default=32, help="clips per engine call (default 32)")
    add_budget_argument(parser)
    parser.add_argument("--json", help="also write the report as JSON here")
    parser.add_argument("--plot", help="also plot deviation, floor and MPJPE difference per joint here (PNG)")
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..verify import ParityCheck, check_reference, parity_clips

    budgets = parse_budgets(args.budget)
    backend = backend_for(args.engine, args.backend)
    engine_config, engine_source = backend.recorded_model(args.engine, args.config)
    reference_path = args.reference or _own_reference(args.engine, backend, engine_source)
    reference = read_checkpoint(reference_path, args.config)
    notes = check_reference(reference.config.to_dict(), reference.source, engine_config, engine_source)
    with open_engine(args) as engine:
        clips = parity_clips(args.clips, reference.config.n_frames)
        report = ParityCheck(build_from_checkpoint(reference), clips, args.batch_size, budgets).check(engine)
        report.update(engine=str(args.engine), reference=str(reference_path), engine_metadata=engine.metadata(),
                      notes=notes + list(getattr(engine, "notes", [])),
                      commands=engine.reproduction_commands(min(args.batch_size, len(clips))))
    _print(report, args, reference_path, len(clips))
    if args.json:
        print(f"wrote {write_json(args.json, report)}")
    return 0 if report["passed"] else 1


def _own_reference(path: str, backend, engine_source: dict) -> str:
    """A checkpoint is its own reference; any other file needs --reference."""
    if backend.opens_checkpoints:
        return path
    origin = f", {engine_source['file']}" if engine_source.get("file") else ""
    raise KasfError(f"{path} ({backend.name} backend) holds no PyTorch weights to compare with: pass "
                    f"--reference with the checkpoint it was exported from{origin} (--config too for an "
                    "authors' checkpoint)")


def _print(report: dict, args: argparse.Namespace, reference_path: str, clips: int) -> None:
    from ..verify import format_parity, format_per_joint, plot_per_joint

    print(format_parity([report], title=f"{args.engine} against PyTorch FP32 ({reference_path}) on {clips} "
                                        f"motion-capture test clips, {report['sequences']} sequences (mm)"))
    print()
    print(format_per_joint(report))
    for note in report["notes"]:
        print(f"note: {note}")
    if report["commands"]:
        print("\nthe same check outside kasf:")
        print("\n".join(f"  {command}" for command in report["commands"]))
    if args.plot:
        print(f"wrote {plot_per_joint({Path(args.engine).name: report}, args.plot)}")
