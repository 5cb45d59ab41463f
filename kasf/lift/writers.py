"""Lifted poses written in the formats analysis tools open, chosen by the output's suffix.

| suffix | what it holds                                                                                    |
|--------|--------------------------------------------------------------------------------------------------|
| .csv   | kasf's poses CSV (kasf.stream.capture): every pose as the runtime returned it, model units       |
| .json  | per frame, every track's pose in metres and its 2D confidences, with units, axes and scale        |
| .npz   | poses [tracks, frames, 17, 3] metres (NaN where absent), confidences, frame numbers, track ids    |
| .trc   | the marker file OpenSim and Pose2Sim read: metres, Y up, one file per track                      |

Metres are root-relative and scaled to a height (LiftResult.scale_note says how); .json and .npz
keep the camera's axes (x right, y down, z away from the camera), .trc turns them to Y up:
X = x, Y = -y, Z = -z (a right-handed frame, Z towards the camera), the pelvis at the origin.
Every file is written whole or not at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__
from ..errors import InputError
from ..files import atomic_write
from ..keypoints.skeleton import JOINT_NAMES
from ..stream.capture import write_poses
from .lifting import LiftResult

CAMERA_AXES = "camera: x right, y down, z away from the camera; root-relative (pelvis at 0)"


def _provenance(result: LiftResult) -> dict:
    detections = result.detections
    return {"kasf": __version__, "detections": str(detections.path), "format": detections.format,
            "layout": detections.layout.name, "lag": result.lag, "stride": result.stride, "fps": result.fps,
            "image_size": list(result.image_size)}


def _rounded(values: np.ndarray, digits: int = 5) -> list:
    return np.round(values.astype(np.float64), digits).tolist()


def write_json(result: LiftResult, path: Path) -> list[Path]:
    metres = result.metres()
    frames = []
    for frame, number in enumerate(result.frame_numbers):
        people = [{"track": track, "pose": _rounded(metres[row, frame]),
                   "confidence": _rounded(result.confidences[row, frame], 4)}
                  for row, track in enumerate(result.track_ids) if np.isfinite(metres[row, frame]).all()]
        frames.append({"frame": int(number), "people": people})
    document = {"format": "kasf-poses", "version": 1, **_provenance(result), "units": "m", "axes": CAMERA_AXES,
                "scale": result.scale_note(), "joints": list(JOINT_NAMES), "frames": frames}
    return [atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(document)))]


def write_npz(result: LiftResult, path: Path) -> list[Path]:
    arrays = {"poses": result.metres(), "confidences": result.confidences.astype(np.float32),
              "keypoints_2d": result.keypoints, "frame_numbers": result.frame_numbers.astype(np.int64),
              "track_ids": np.asarray(result.track_ids, np.int64), "joint_names": np.asarray(JOINT_NAMES),
              "units": np.asarray("m"), "axes": np.asarray(CAMERA_AXES), "scale": np.asarray(result.scale_note()),
              "provenance": np.asarray(json.dumps(_provenance(result)))}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return [atomic_write(path, write)]


def trc_paths(path: Path, track_ids: list[int]) -> list[Path]:
    """One TRC per track (OpenSim scales and solves one body a file): OUT itself for a single
    track, OUT_track<ID>.trc for several."""
    if len(track_ids) == 1:
        return [path]
    return [path.with_name(f"{path.stem}_track{track}{path.suffix}") for track in track_ids]


def trc_text(result: LiftResult, row: int, name: str) -> str:
    """One track's TRC: the header OpenSim's TRCFileAdapter checks (PathFileType line, the eight
    metadata keys, marker names, X1 Y1 Z1 ... labels, a blank line), then one row per frame;
    frames without a pose leave their cells empty (read as NaN)."""
    metres = result.metres()[row]
    upright = metres * np.array([1.0, -1.0, -1.0], np.float32)
    frames = len(upright)
    header = [
        "\t".join(["PathFileType", "4", "(X/Y/Z)", name,
                   f"kasf {__version__}: track {result.track_ids[row]}; scale: {result.scale_note()}; axes: X camera "
                   "right, Y up, Z towards the camera, pelvis at the origin"]),
        "\t".join(["DataRate", "CameraRate", "NumFrames", "NumMarkers", "Units", "OrigDataRate",
                   "OrigDataStartFrame", "OrigNumFrames"]),
        "\t".join([f"{result.fps:g}", f"{result.fps:g}", str(frames), str(len(JOINT_NAMES)), "m", f"{result.fps:g}",
                   str(int(result.frame_numbers[0]) + 1), str(frames)]),
        "\t".join(["Frame#", "Time"] + [f"{joint}\t\t" for joint in JOINT_NAMES]),
        "\t".join(["", ""] + [f"{axis}{i}" for i in range(1, len(JOINT_NAMES) + 1) for axis in "XYZ"]),
        "",
    ]
    rows = []
    for frame in range(frames):
        cells = [f"{value:.6f}" if np.isfinite(value) else "" for value in upright[frame].reshape(-1)]
        rows.append("\t".join([str(frame + 1), f"{frame / result.fps:.6f}"] + cells))
    return "\n".join(header + rows) + "\n"


def write_trc(result: LiftResult, path: Path) -> list[Path]:
    paths = trc_paths(path, result.track_ids)
    texts = [trc_text(result, row, target.name) for row, target in enumerate(paths)]
    return [atomic_write(target, lambda tmp, text=text: Path(tmp).write_text(text))
            for target, text in zip(paths, texts)]


def write_csv(result: LiftResult, path: Path) -> list[Path]:
    return [write_poses(path, result.results)]


WRITERS: dict[str, Callable[[LiftResult, Path], list[Path]]] = {
    ".csv": write_csv, ".json": write_json, ".npz": write_npz, ".trc": write_trc}


def check_outputs(paths: list[str | Path]) -> list[Path]:
    """The outputs' paths, refused before any work when a suffix has no writer."""
    if not paths:
        raise InputError("no output given: name at least one file (-o poses.trc)")
    checked = [Path(path) for path in paths]
    for path in checked:
        if path.suffix.lower() not in WRITERS:
            raise InputError(f"{path}: unknown output suffix {path.suffix!r}: choose {', '.join(WRITERS)}")
    return checked


def write_outputs(result: LiftResult, paths: list[str | Path]) -> list[Path]:
    """Every output, each whole; the paths written (a TRC of several tracks is one file each)."""
    if not result.track_ids:
        raise InputError(f"{result.detections.path}: no track was lifted, nothing to write")
    return [written for path in check_outputs(paths) for written in WRITERS[path.suffix.lower()](result, path)]
