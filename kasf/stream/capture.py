"""The poses CSV lifted from a keypoint capture (kasf.keypoints.kasf_csv), and the replay of one
through a StreamRuntime. `kasf replay` and the C++ runtime's kasf_replay read and write the same
files, so the two runtimes can be compared on them.

Poses: `frame,track,track_frame,x_pelvis,y_pelvis,z_pelvis,...` in the order the runtime
returned them; frame is the frame that brought the keypoints. Values carry 9 significant
digits: float32 round-trips exactly.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..keypoints.kasf_csv import format_number, write_rows
from ..keypoints.skeleton import JOINT_NAMES, NUM_JOINTS
from .runtime import StreamRuntime
from .windows import PoseResult

POSE_COLUMNS = ["frame", "track", "track_frame"] + [f"{axis}_{name}" for name in JOINT_NAMES for axis in "xyz"]


def write_poses(path: str | Path, results: list[PoseResult]) -> Path:
    return write_rows(path, POSE_COLUMNS, (
        [result.frame, result.track_id, result.track_frame, *map(format_number, result.pose.reshape(-1))]
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
