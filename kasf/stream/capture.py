"""Capture files: tracked people's per-frame 2D keypoints, and the 3D poses lifted from them, as
CSV, and the replay of one through a StreamRuntime. `kasf replay` and the C++ runtime's
kasf_replay read and write the same files, so the two runtimes can be compared on them.

Keypoints: a header `frame,track,x_pelvis,y_pelvis,c_pelvis,...` (17 joints in kasf.model.skeleton
order), one row per person seen per frame, frames in order from 0; a frame without rows is a
frame where nobody was seen (such frames at the very end are not recorded). A missing joint has
confidence 0 (coordinates may be nan).
Poses: `frame,track,track_frame,x_pelvis,y_pelvis,z_pelvis,...` in the order the runtime
returned them; frame is the frame that brought the keypoints. Values carry 9 significant
digits: float32 round-trips exactly.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import InputError
from ..files import atomic_write
from ..model.skeleton import JOINT_NAMES, NUM_JOINTS
from .runtime import StreamRuntime
from .windows import PoseResult

KEYPOINT_COLUMNS = ["frame", "track"] + [f"{axis}_{name}" for name in JOINT_NAMES for axis in ("x", "y", "c")]
POSE_COLUMNS = ["frame", "track", "track_frame"] + [f"{axis}_{name}" for name in JOINT_NAMES for axis in "xyz"]


def _number(value: float) -> str:
    return f"{value:.9g}"


def _write_rows(path: str | Path, header: list[str], rows: Iterable[list]) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
    return atomic_write(path, write)


def write_keypoints(path: str | Path, frames: list[dict[int, np.ndarray]]) -> Path:
    """frames: per frame, {track id: keypoints [17, 3]}."""
    return _write_rows(path, KEYPOINT_COLUMNS, (
        [frame, track, *map(_number, np.asarray(keypoints, np.float32).reshape(-1))]
        for frame, people in enumerate(frames) for track, keypoints in people.items()))


def read_keypoints(path: str | Path) -> list[dict[int, np.ndarray]]:
    """Per frame from 0 to the last one in the file, {track id: keypoints [17, 3] float32}. A
    malformed file is an InputError naming the line."""
    frames: list[dict[int, np.ndarray]] = []
    try:
        handle = open(path, newline="")
    except OSError as err:
        raise InputError(f"cannot read keypoint file {path}: {err.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != KEYPOINT_COLUMNS:
            raise InputError(f"{path} is not a kasf keypoint file: its header must be frame,track,"
                             f"x_pelvis,y_pelvis,c_pelvis,... ({len(KEYPOINT_COLUMNS)} columns)")
        for line, row in enumerate(reader, start=2):
            where = f"{path} line {line}"
            if len(row) != len(KEYPOINT_COLUMNS):
                raise InputError(f"{where}: {len(row)} values, a row has {len(KEYPOINT_COLUMNS)}")
            try:
                frame, track = int(row[0]), int(row[1])
                keypoints = np.array(row[2:], dtype=np.float32).reshape(NUM_JOINTS, 3)
            except ValueError as err:
                raise InputError(f"{where}: not a number ({err})") from None
            if frame < len(frames) - 1 or frame < 0:
                raise InputError(f"{where}: frame {frame} comes after frame {len(frames) - 1}; rows must be in "
                                 "frame order")
            while len(frames) <= frame:
                frames.append({})
            if track in frames[frame]:
                raise InputError(f"{where}: track {track} has a second row in frame {frame}")
            frames[frame][track] = keypoints
    return frames


def write_poses(path: str | Path, results: list[PoseResult]) -> Path:
    return _write_rows(path, POSE_COLUMNS, (
        [result.frame, result.track_id, result.track_frame, *map(_number, result.pose.reshape(-1))]
        for result in results))


def read_poses(path: str | Path) -> dict[tuple[int, int], np.ndarray]:
    """{(track id, track frame): pose [17, 3] float32} of a poses file."""
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        if next(reader, None) != POSE_COLUMNS:
            raise InputError(f"{path} is not a kasf poses file (header frame,track,track_frame,x_pelvis,...)")
        return {(int(row[1]), int(row[2])): np.array(row[3:], dtype=np.float32).reshape(NUM_JOINTS, 3)
                for row in reader}


def replay_frames(runtime: StreamRuntime, frames: list[dict[int, np.ndarray]]) -> list[PoseResult]:
    """Every frame through the runtime in order, then every track closed (flushing centred mode)."""
    results = [result for people in frames for result in runtime.process(people)]
    return results + runtime.close_all()
