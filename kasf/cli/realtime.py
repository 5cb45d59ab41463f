"""`kasf realtime`: how many tracked people the streaming runtime keeps up with (also benchmarks/realtime.py)."""

from __future__ import annotations

import argparse

from ..files import write_json
from ..stream.realtime import CRITERION, format_replays, measure_people
from .arguments import add_engine_arguments, add_replay_arguments, add_stream_arguments, open_engine

HELP = "how many tracked people the streaming runtime keeps up with"
DESCRIPTION = ("Replay motion-capture people at a frame rate through the streaming runtime; report latency and "
               "dropped frames, and search for the most people sustainable (p99 frame latency within 1/fps, p99 "
               "window latency within stride/fps, at most 1%% dropped).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", required=True, help="the model file (.onnx, .engine/.plan, .pt/.pth, .pt2)")
    parser.add_argument("--people", type=int, nargs="+", default=[1, 4, 8],
                        help="people tracked at once, one replay each (default 1 4 8)")
    parser.add_argument("--no-search", action="store_true", help="only replay the --people counts")
    parser.add_argument("--json", help="also write the reports as JSON here")
    add_stream_arguments(parser)
    add_replay_arguments(parser, seconds=5.0)
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Replay each --people count, then search for the most people sustainable; print the tables."""
    with open_engine(args) as engine:
        result = measure_people(engine, args.people, args.fps, args.seconds,
                                None if args.no_search else args.max_people, mode=args.mode, lag=args.lag,
                                stride=args.stride, blend=args.blend, worker=args.worker)
        setting = (f"lag {result['runs'][0]['lag']}, stride {args.stride}" + (", blended" if args.blend else "")
                   + (", worker" if args.worker else ""))
        title = (f"{args.engine} ({engine.backend}, {engine.precision}), {setting} at {args.fps:g} fps, "
                 f"{args.seconds:g} s per replay; latency in ms")
    print(format_replays(result["runs"], title))
    if "search" in result:
        print()
        print(format_replays(result["search"], f"search for the most people ({CRITERION})"))
        limit_note = " (the search limit, --max-people)" if result["most_people"] == args.max_people else ""
        print(f"\nmost people sustainable at {args.fps:g} fps ({setting}) on this machine: "
              f"{result['most_people']}{limit_note}")
    if args.json:
        print(f"wrote {write_json(args.json, {'engine': str(args.engine), **result})}")
    return 0
