"""Argument groups several commands share, each mirroring one library object: the engine options
(read from the backend table), the parity budgets, the training and evaluation data."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from ..data.mocap import DEFAULT_CAMERAS, DETECTOR_ERRORS
from ..engines import BACKENDS, backend_for, load_engine
from ..engines.base import Engine
from ..errors import KasfError


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """The engine options of every command that opens a model file: each backend's command-line
    options from its row of the table, one flag per name; a backend refuses the options it does not
    take (load_engine says which it takes)."""
    options = parser.add_argument_group("engine options")
    options.add_argument("--backend", choices=sorted(BACKENDS), help="default: from the file's suffix")
    by_name: dict[str, list] = {}
    for backend in BACKENDS.values():
        for option in backend.options:
            if option.command_line:
                by_name.setdefault(option.name, []).append((backend.name, option))
    for name, takers in by_name.items():
        flag = "--" + name.replace("_", "-")
        helps: dict[str, list[str]] = {}
        for backend, option in takers:
            helps.setdefault(option.help, []).append(backend)
        help_text = "; ".join(f"{', '.join(backends)}: {text}" for text, backends in helps.items())
        first = takers[0][1]
        if first.types[0] is bool:
            options.add_argument(flag, action="store_true", default=None, help=help_text)
            continue
        choices = sorted({choice for _, option in takers for choice in option.choices}) or None
        options.add_argument(flag, type=first.types[0], choices=choices, help=help_text)


def engine_options(args: argparse.Namespace, backend: str) -> dict:
    """The engine options given on a command line made by add_engine_arguments. --config also names
    the reference checkpoint's YAML, so it goes only to a backend that takes it."""
    chosen = BACKENDS[backend]
    names = {option.name for row in BACKENDS.values() for option in row.options if option.command_line}
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if "config" in given and chosen.option("config") is None:
        del given["config"]
    return given


def open_engine(args: argparse.Namespace, path_argument: str = "engine") -> Engine:
    """The engine a command line names (its file, --backend and the engine options)."""
    path = getattr(args, path_argument)
    backend = backend_for(path, args.backend).name
    return load_engine(path, backend, **engine_options(args, backend))


def add_stream_arguments(parser: argparse.ArgumentParser, mode: str = "causal") -> None:
    """Which poses the streaming runtime returns (kasf.stream.StreamRuntime's mode, lag, stride)."""
    from ..stream import MODES

    stream = parser.add_argument_group("streaming")
    stream.add_argument("--mode", choices=MODES, default=mode,
                        help=f"latency preset: causal (lag 0) or centred (lag 13), stride 1 (default {mode})")
    stream.add_argument("--lag", type=int, help="frames the newest returned pose lies behind the newest keypoints "
                                                "(default: the mode's)")
    stream.add_argument("--stride", type=int, default=1,
                        help="poses one engine window returns per track, every stride frames (default 1; "
                             "lag + stride <= the window's 27 frames)")
    stream.add_argument("--blend", action="store_true",
                        help="return each pose as the mean of every window that held its frame (changes poses "
                             "only where lag > 0)")


def add_replay_arguments(parser: argparse.ArgumentParser, seconds: float) -> None:
    """How recorded people are replayed in real time (kasf.stream.realtime.measure_people)."""
    replay = parser.add_argument_group("real-time replay")
    replay.add_argument("--fps", type=float, default=30.0, help="camera frame rate (default 30)")
    replay.add_argument("--seconds", type=float, default=seconds, help=f"length of each replay (default {seconds:g})")
    replay.add_argument("--max-people", type=int, default=256,
                        help="upper end of the search for the most people sustainable (default 256)")
    replay.add_argument("--worker", action="store_true",
                        help="lift the engine windows on a worker thread beside the frame loop (StreamRuntime's "
                             "worker=True): frames never wait for the engine, poses come back a frame or more later")


def add_budget_argument(parser: argparse.ArgumentParser) -> None:
    from ..verify import BUDGETS_MM

    defaults = ", ".join(f"{p} {v:g}" for p, v in BUDGETS_MM.items())
    parser.add_argument("--budget", nargs="+", default=[], metavar="[PRECISION=]MM",
                        help="largest MPJPE / P-MPJPE difference from PyTorch FP32 an engine may cost, in mm: one "
                             f"value for every precision, or PRECISION=MM each (defaults: {defaults})")


def parse_budgets(values: list[str]) -> dict[str, float]:
    """--budget 0.2 (every precision) or --budget fp16=0.2 int8=1 -> {precision: mm}."""
    from ..verify import BUDGETS_MM

    budgets: dict[str, float] = {}
    for value in values:
        precision, _, number = value.rpartition("=")
        try:
            mm = float(number)
        except ValueError:
            raise KasfError(f"--budget {value!r}: expected MM or PRECISION=MM with MM a number of millimetres") from None
        if precision and precision not in BUDGETS_MM:
            raise KasfError(f"--budget {value!r}: unknown precision {precision!r} (known: {', '.join(BUDGETS_MM)})")
        if not mm >= 0:
            raise KasfError(f"--budget {value!r}: a budget is a distance in mm, at least 0")
        budgets.update({precision: mm} if precision else dict.fromkeys(BUDGETS_MM, mm))
    return budgets


def add_timing_arguments(parser: argparse.ArgumentParser) -> None:
    """How engines are timed (kasf.bench.BenchSettings): trtexec's conventions, interleaved."""
    from ..bench import MIN_DURATION_S, MIN_ITERATIONS, SETTLE_S, WARMUP_S

    timing = parser.add_argument_group("timing")
    timing.add_argument("--batch", type=int, nargs="+", default=[1], help="batch sizes to sweep (default 1)")
    timing.add_argument("--warmup", type=float, default=1e3 * WARMUP_S,
                        help=f"warm-up in ms (default {1e3 * WARMUP_S:.0f})")
    timing.add_argument("--iterations", type=int, default=MIN_ITERATIONS,
                        help=f"at least this many timed rounds (default {MIN_ITERATIONS})")
    timing.add_argument("--duration", type=float, default=MIN_DURATION_S,
                        help=f"and at least this many seconds per batch size (default {MIN_DURATION_S:g})")
    timing.add_argument("--settle", type=float, default=1e3 * SETTLE_S,
                        help=f"idle ms between two engines' turns, so one's spinning threads do not slow the next "
                             f"(default {1e3 * SETTLE_S:.0f})")
    timing.add_argument("--threads", type=int, help="CPU threads for torch and ONNX Runtime (default: their choice)")


def timing_settings(args: argparse.Namespace) -> dict:
    """BenchSettings' timing fields from add_timing_arguments' flags."""
    return {"batches": args.batch, "warmup_s": args.warmup / 1e3, "min_iterations": args.iterations,
            "min_duration_s": args.duration, "settle_s": args.settle / 1e3, "threads": args.threads}


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data a command trains or evaluates on; the mocap's detector errors apply to every split
    (the test split draws its own), so `kasf eval --detector-errors typical` measures noisy input."""
    data = parser.add_argument_group("data")
    data.add_argument("--data", default="mocap",
                      help="'mocap' (the embedded motion capture, default) or an authors'-format pickle")
    data.add_argument("--dataset", choices=["sportspose", "worldpose"],
                      help="resolution table of a pickle (default: SportsPose if it has camera names)")
    data.add_argument("--validation-fraction", type=float, default=0.1,
                      help="share of a pickle's training sequences held out for validation (default 0.1)")
    data.add_argument("--split-seed", type=int, default=0, help="seed of that hold-out (default 0)")
    data.add_argument("--motion-dir", help="DeepMimic motion directory (default: the installed pybullet_data)")
    data.add_argument("--cameras", type=int, default=DEFAULT_CAMERAS,
                      help=f"virtual cameras per motion (mocap; default {DEFAULT_CAMERAS})")
    models = "; ".join(f"{name}: {errors.describe()}" for name, errors in DETECTOR_ERRORS.items()).replace("%", "%%")
    data.add_argument("--detector-errors", choices=list(DETECTOR_ERRORS), default="none",
                      help=f"a 2D detector's mistakes in every split of the mocap, the test split's drawn apart "
                           f"({models}; default none)")
    data.add_argument("--noise-px", type=float,
                      help="jitter in pixels for a person as tall as the image, scaled with the person's height "
                           "(mocap; default: the --detector-errors model's)")


def main_process() -> bool:
    """Rank 0 of a torchrun launch, or a plain process: the one that prints."""
    return os.environ.get("RANK", "0") == "0"


def load_splits(args: argparse.Namespace, n_frames: int):
    """The train / validation / test clips a command line names, with the data's notes on stderr."""
    from ..data.splits import load_splits as load

    errors = DETECTOR_ERRORS[args.detector_errors]
    if args.noise_px is not None:
        errors = dataclasses.replace(errors, noise_px=args.noise_px)
    mocap = {"motion_dir": args.motion_dir, "cameras_per_motion": args.cameras, "detector_errors": errors}
    splits = load(args.data, args.dataset, n_frames, args.validation_fraction, args.split_seed,
                  **(mocap if args.data == "mocap" else {}))
    if main_process():
        for note in splits.notes:
            print(f"note: {note}", file=sys.stderr)
    return splits
