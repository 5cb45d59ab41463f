"""kasf's keypoint CSV: tracked people's per-frame 2D keypoints in Human3.6M order, the file
`kasf replay`, `kasf lift` and the C++ runtime's kasf_replay read.

A header `frame,track,x_pelvis,y_pelvis,c_pelvis,...` (17 joints in kasf.keypoints.skeleton
order), one row per person seen per frame, frames in order from 0; a frame without rows is a
frame where nobody was seen (such frames at the very end are not recorded). A missing joint has
confidence 0 (coordinates may be nan). Values carry 9 significant digits: float32 round-trips
exactly.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import InputError
from ..files import atomic_write
from .skeleton import JOINT_NAMES, NUM_JOINTS

KEYPOINT_COLUMNS = ["frame", "track"] + [f"{axis}_{name}" for name in JOINT_NAMES for axis in ("x", "y", "c")]


def format_number(value: float) -> str:
    return f"{value:.9g}"


def write_rows(path: str | Path, header: list[str], rows: Iterable[list]) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
    return atomic_write(path, write)


def write_keypoints(path: str | Path, frames: list[dict[int, np.ndarray]]) -> Path:
    """frames: per frame, {track id: keypoints [17, 3]}."""
    return write_rows(path, KEYPOINT_COLUMNS, (
        [frame, track, *map(format_number, np.asarray(keypoints, np.float32).reshape(-1))]
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
