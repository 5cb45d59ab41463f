"""`kasf latency-accuracy`: streamed accuracy for a grid of (lag, stride), with latency and work."""

from __future__ import annotations

import argparse

from ..files import write_json
from ..stream.accuracy import (DEFAULT_SETTINGS, format_latency_accuracy, latency_accuracy, mocap_test_frames,
                               parse_setting, setting_label)
from .arguments import add_engine_arguments, add_replay_arguments, open_engine

HELP = "the streaming runtime's accuracy for each (lag, stride): MPJPE, jitter, latency, work per pose"
DESCRIPTION = ("Stream the embedded motion capture's test sequences through the streaming runtime, one track per "
               "sequence, for each LAG:STRIDE setting; compare every returned pose with the ground truth of its "
               "frame (MPJPE, P-MPJPE, acceleration error) and report the latency in frames and the engine "
               "windows per pose; with --people, also the most people sustained at --fps on this machine.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", required=True, help="the model file (.onnx, .engine/.plan, .pt/.pth, .pt2)")
    defaults = [setting_label(*setting) for setting in DEFAULT_SETTINGS]
    parser.add_argument("--settings", nargs="+", metavar="LAG:STRIDE[:blend]", default=defaults,
                        help="the grid; :blend averages overlapping windows (default: " + " ".join(defaults) + ")")
    parser.add_argument("--sequences", type=int, help="stream this many test sequences, spread over the motions "
                                                      "(default: all 128)")
    parser.add_argument("--people", action="store_true",
                        help="also search for the most people sustained at --fps with each setting")
    add_replay_arguments(parser, seconds=3.0)
    parser.add_argument("--json", help="also write the rows as JSON here")
    parser.add_argument("--plot", help="also plot MPJPE against latency here (PNG)")
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..stream.accuracy import plot_latency_accuracy
    from ..stream.realtime import measure_people

    settings = [parse_setting(text) for text in args.settings]
    with open_engine(args) as engine:
        rows = latency_accuracy(engine, settings, mocap_test_frames(args.sequences))
        if args.people:
            for row in rows:
                found = measure_people(engine, [1], args.fps, args.seconds, max_people=args.max_people,
                                       lag=row["lag"], stride=row["stride"], worker=args.worker,
                                       blend=row["blend"])
                row["people"], row["people_search"] = found["most_people"], found["search"]
        title = f"{args.engine} ({engine.backend}, {engine.precision}): {rows[0]['frames']} streamed test frames"
    print(format_latency_accuracy(rows, title + (f"; people sustained at {args.fps:g} fps" if args.people else "")))
    if args.plot:
        plot_latency_accuracy(rows, args.plot, title)
        print(f"wrote {args.plot}")
    if args.json:
        print(f"wrote {write_json(args.json, {'engine': str(args.engine), 'rows': rows})}")
    return 0
