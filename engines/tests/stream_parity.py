"""The C++ runtime's poses against the Python runtime's, on the same engine file and keypoints.

A capture of five people from the embedded motion capture (pixels, 1920 x 1080): people enter and
leave, one is closed by close_after and replaced by a new id, one is seen for fewer frames than
centred mode's delay, joints go missing (confidence 0, NaN coordinates), one frame loses a person
entirely. `kasf.stream.capture.replay_frames` (Python) and kasf_replay (C++) lift it; every pose must come back
from both, in the same order, within --budget-mm millimetres (the test split's median 2.5D factor
turns normalised units into mm).

    python engines/tests/stream_parity.py --replay build/kasf_replay --engine tiny.pt2 --mode causal --work DIR
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

from kasf.keypoints.kasf_csv import write_keypoints
from kasf.stream.capture import read_poses, replay_frames, write_poses
from kasf.data.mocap import load_mocap_source
from kasf.data.source import parse_split
from kasf.engines import load_engine
from kasf.model.normalization import to_millimetres
from kasf.stream.realtime import recorded_people
from kasf.stream.runtime import StreamRuntime

FRAMES = 64
CLOSE_AFTER = 4
# track id: (first frame, last frame) it is seen in
APPEARANCES = {0: (0, 63), 1: (3, 30), 2: (10, 63), 3: (40, 63), 4: (50, 55)}


def capture(seed: int = 0) -> tuple[list[dict[int, np.ndarray]], tuple[float, float]]:
    people, image_size = recorded_people(len(APPEARANCES))
    rng = np.random.default_rng(seed)
    frames: list[dict[int, np.ndarray]] = [{} for _ in range(FRAMES)]
    for track, (first, last) in APPEARANCES.items():
        for frame in range(first, last + 1):
            keypoints = people[track][frame % len(people[track])].copy()
            missing = rng.random(17) < 0.15
            keypoints[missing, :2] = np.nan
            keypoints[missing, 2] = 0.0
            keypoints[~missing, 2] = rng.uniform(0.3, 1.0, int((~missing).sum()))
            frames[frame][track] = keypoints
    frames[20][2][:, :2], frames[20][2][:, 2] = np.nan, 0.0   # person 2 entirely unseen for a frame
    del frames[25][0]                                        # person 0 not detected for a frame
    return frames, image_size


def median_factor() -> float:
    return float(np.median(parse_split(load_mocap_source(), "test", "mocap", evaluation=True).factor))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replay", required=True, help="the kasf_replay executable")
    parser.add_argument("--engine", required=True)
    parser.add_argument("--mode", choices=("causal", "centred"), required=True)
    parser.add_argument("--lag", type=int, help="default: the mode's")
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--blend", action="store_true")
    parser.add_argument("--work", required=True, help="folder for the capture and pose files")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget-mm", type=float, default=1e-3)
    args = parser.parse_args()

    work = Path(args.work)
    name = f"{args.mode}_{args.lag}_{args.stride}{'_blend' if args.blend else ''}"
    frames, (width, height) = capture()
    keypoints_csv = write_keypoints(work / f"capture_{name}.csv", frames)
    with load_engine(args.engine, threads=args.threads) as engine:
        runtime = StreamRuntime(engine, mode=args.mode, image_size=(width, height), close_after=CLOSE_AFTER,
                                lag=args.lag, stride=args.stride, blend=args.blend)
        python_csv = write_poses(work / f"python_{name}.csv", replay_frames(runtime, frames))
    cpp_csv = work / f"cpp_{name}.csv"
    setting = (["--lag", str(args.lag)] if args.lag is not None else []) + (["--blend"] if args.blend else [])
    subprocess.run([args.replay, args.engine, str(keypoints_csv), str(cpp_csv), "--mode", args.mode, *setting,
                    "--stride", str(args.stride), "--image-size", str(width), str(height),
                    "--close-after", str(CLOSE_AFTER), "--threads", str(args.threads)], check=True)

    python_poses, cpp_poses = read_poses(python_csv), read_poses(cpp_csv)
    python_order = [line.split(",", 3)[:3] for line in python_csv.read_text().splitlines()[1:]]
    cpp_order = [line.split(",", 3)[:3] for line in cpp_csv.read_text().splitlines()[1:]]
    if python_order != cpp_order:
        print(f"FAIL: the runtimes returned different poses or orders: Python {len(python_order)} "
              f"(first {python_order[:3]}), C++ {len(cpp_order)} (first {cpp_order[:3]})")
        return 1
    keys = list(python_poses)
    factor = median_factor()
    python_mm = to_millimetres(np.stack([python_poses[k] for k in keys]), width, height, factor)
    cpp_mm = to_millimetres(np.stack([cpp_poses[k] for k in keys]), width, height, factor)
    deviation = np.linalg.norm(python_mm - cpp_mm, axis=-1)
    verdict = "PASS" if deviation.max() <= args.budget_mm else "FAIL"
    print(f"{verdict}: {args.mode} mode, lag {runtime.lag}, stride {runtime.stride}, blend {runtime.blend}, {len(keys)} poses of {len(APPEARANCES)} tracks over {FRAMES} frames from "
          f"{args.engine}: C++ against Python per-joint deviation mean {deviation.mean():.2e} mm, "
          f"max {deviation.max():.2e} mm (budget {args.budget_mm:g} mm; {factor:.3f} mm per pixel)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
