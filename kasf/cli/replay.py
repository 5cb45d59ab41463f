"""`kasf replay`: a capture file of tracked people's keypoints lifted frame by frame."""

from __future__ import annotations

import argparse

from ..stream import StreamRuntime
from ..keypoints.kasf_csv import read_keypoints
from ..stream.capture import replay_frames, write_poses
from .arguments import add_engine_arguments, add_stream_arguments, open_engine

HELP = "lift a capture file of tracked people's keypoints, frame by frame"
DESCRIPTION = ("Replay a keypoint CSV (kasf.stream.capture) through the streaming runtime, frame by frame, closing "
               "every track at the end; write the poses CSV. The C++ runtime's kasf_replay does the same with the "
               "same files.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("engine", help="the model file (.onnx, .engine/.plan, .pt/.pth, .pt2)")
    parser.add_argument("--keypoints", required=True, help="the keypoint CSV to replay")
    parser.add_argument("-o", "--output", required=True, help="the poses CSV to write")
    parser.add_argument("--image-size", type=float, nargs=2, metavar=("W", "H"),
                        help="keypoints in pixels of this image size (default: already normalised)")
    parser.add_argument("--close-after", type=int, help="close a track after this many frames without it")
    add_stream_arguments(parser)
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    frames = read_keypoints(args.keypoints)
    with open_engine(args) as engine:
        runtime = StreamRuntime(engine, mode=args.mode, image_size=args.image_size, normalized=args.image_size is None,
                                close_after=args.close_after, lag=args.lag, stride=args.stride, blend=args.blend)
        results = replay_frames(runtime, frames)
    write_poses(args.output, results)
    latency = runtime.latency.summary()
    print(f"{len(frames)} frames, {len(results)} poses (lag {runtime.lag}, stride {runtime.stride}, {engine.backend}, "
          f"{runtime.windows} engine windows) -> {args.output}; "
          f"per frame p50 {latency['total_p50_ms']:.2f} ms, p99 {latency['total_p99_ms']:.2f} ms")
    return 0
