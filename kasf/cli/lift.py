"""`kasf lift`: a detector's 2D keypoints file in, 3D poses out (and a video to show)."""

from __future__ import annotations

import argparse

from ..keypoints import FORMATS, LAYOUTS
from ..lift import DEFAULT_HEIGHT_M, WRITERS
from .arguments import add_engine_arguments, add_stream_arguments, open_engine

HELP = "lift a detector's keypoints (OpenPose, AlphaPose, MMPose, COCO, kasf CSV) to 3D poses"
DESCRIPTION = ("Read 2D detections (format and layout told from the file), give people track ids where the detector "
               "gave none, lift every track through the streaming runtime (centred by default: offline, the most "
               "accurate), and write each -o by its suffix: " + ", ".join(WRITERS) + ". Metric outputs are scaled "
               "to a standing height (--height).")
EPILOG = """examples:
  kasf lift openpose_json/ --engine model.onnx --video clip.mp4 -o poses.trc -o poses.npz --render lifted.mp4
  kasf lift alphapose-results.json --engine best.pt --image-size 1920 1080 --fps 50 -o poses.json
  kasf lift predictions.json --format mmpose --engine model.engine --image-size 1280 720 -o poses.csv
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("detections", help="the detector's file, or a folder of OpenPose / MMPose per-frame JSON")
    parser.add_argument("--engine", required=True, help="the model: any engine file (.onnx, .engine, .pt2) or a "
                                                        "checkpoint (.pt/.pth)")
    parser.add_argument("-o", "--output", action="append", required=True, metavar="OUT",
                        help=f"an output, its format by suffix ({', '.join(WRITERS)}); repeat for several")
    reading = parser.add_argument_group("detections")
    reading.add_argument("--format", choices=FORMATS, help="the detections' format (default: told from the file)")
    reading.add_argument("--layout", choices=sorted(LAYOUTS),
                         help="the keypoint layout (default: told from the keypoint count and, for 25, the keypoints)")
    reading.add_argument("--min-confidence", type=float, default=0.0,
                         help="keypoints below this confidence count as unseen (default 0)")
    reading.add_argument("--image-size", type=float, nargs=2, metavar=("W", "H"),
                         help="the camera image's size in pixels (default: the video's)")
    reading.add_argument("--video", help="the video the detections came from: its size and frame rate, and the "
                                         "render's background")
    reading.add_argument("--fps", type=float, help="frame rate (default: the video's, else 30)")
    writing = parser.add_argument_group("outputs")
    writing.add_argument("--height", type=float, metavar="METRES",
                         help=f"the people's standing height, for metric outputs (default {DEFAULT_HEIGHT_M:.2f})")
    writing.add_argument("--render", metavar="OUT.mp4|OUT.gif",
                         help="draw the 2D keypoints (on the video when given) beside the 3D skeletons")
    writing.add_argument("--no-progress", action="store_true", help="no progress bar while rendering")
    add_stream_arguments(parser, mode="centred")
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..lift import lift

    with open_engine(args) as engine:
        result, written = lift(args.detections, engine, args.output, format=args.format, layout=args.layout,
                               image_size=args.image_size, video=args.video, fps=args.fps, render=args.render,
                               min_confidence=args.min_confidence, lag=args.lag, stride=args.stride,
                               blend=args.blend, mode=args.mode, height_m=args.height,
                               progress=not args.no_progress)
    found = result.detections
    print(f"{found.path}: {found.format}, {found.layout.title}, {len(found.frames)} frames, "
          f"{len(result.track_ids)} tracks; lag {result.lag}, stride {result.stride}, {engine.backend}")
    for note in result.notes:
        print(f"note: {note}")
    print(f"scale: {result.scale_note()}")
    for path in written:
        print(f"wrote {path}")
    return 0
