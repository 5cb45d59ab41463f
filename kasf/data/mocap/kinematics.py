"""The DeepMimic humanoid: its URDF, its motion files and forward kinematics onto the
Human3.6M-17 skeleton, in world metres (Y up)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import DataError
from ...keypoints.skeleton import NUM_JOINTS

# URDF lengths are in units of 4 m: pybullet loads the humanoid with globalScaling=0.25.
URDF_SCALE = 0.25

# A frame after its duration and root (position, w-x-y-z quaternion): each joint's local
# rotation, a quaternion for spherical joints and one angle for revolute ones.
_FRAME_JOINTS = (
    ("chest", 4), ("neck", 4), ("right_hip", 4), ("right_knee", 1), ("right_ankle", 4),
    ("right_shoulder", 4), ("right_elbow", 1), ("left_hip", 4), ("left_knee", 1), ("left_ankle", 4),
    ("left_shoulder", 4), ("left_elbow", 1),
)
_FIXED_LINKS = ("right_wrist", "left_wrist")
FRAME_COLUMNS = 1 + 3 + 4 + sum(width for _, width in _FRAME_JOINTS)

# Human3.6M joint index -> the humanoid link whose origin it is; 9 (neck/nose) and 10 (head)
# are points on the head sphere.
_H36M_LINKS = {
    0: "root", 1: "right_hip", 2: "right_knee", 3: "right_ankle", 4: "left_hip", 5: "left_knee",
    6: "left_ankle", 7: "chest", 8: "neck", 11: "left_shoulder", 12: "left_elbow", 13: "left_wrist",
    14: "right_shoulder", 15: "right_elbow", 16: "right_wrist",
}
_NOSE, _HEAD = 9, 10
_ANKLES = (3, 6)
# The nose on the head sphere, in head radii from its centre: forward (+x, where the feet point)
# and below the centre, about 0.6 of the way from the neck joint to the centre.
_NOSE_ON_HEAD = np.array([0.7, -0.65, 0.0])
_HEAD_TOP = np.array([0.0, 1.0, 0.0])


@dataclass(frozen=True)
class _Link:
    """One URDF joint and the link it moves, in metres."""

    name: str
    parent: str
    origin: np.ndarray        # [3] joint position in the parent link frame
    orientation: np.ndarray   # [4] fixed joint-frame rotation (URDF rpy) as a quaternion
    axis: np.ndarray          # [3] rotation axis of a revolute joint


@dataclass(frozen=True)
class Humanoid:
    """The kinematic tree below the root, parents before children, and the head sphere."""

    links: tuple[_Link, ...]
    head_centre: np.ndarray   # [3] in the neck link frame
    head_radius: float


def _quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def _quat_rotate(quaternion: np.ndarray, vector: np.ndarray) -> np.ndarray:
    scalar, axis = quaternion[..., :1], quaternion[..., 1:]
    twice_cross = 2 * np.cross(axis, vector)
    return vector + scalar * twice_cross + np.cross(axis, twice_cross)


def _quat_from_axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    half = np.asarray(angle)[..., None] / 2
    return np.concatenate([np.cos(half), np.sin(half) * axis], axis=-1)


def _quat_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """URDF fixed-axis roll-pitch-yaw: R = Rz(yaw) Ry(pitch) Rx(roll)."""
    about = np.eye(3)
    yaw_pitch = _quat_multiply(_quat_from_axis_angle(about[2], yaw), _quat_from_axis_angle(about[1], pitch))
    return _quat_multiply(yaw_pitch, _quat_from_axis_angle(about[0], roll))


def _slerp(start: np.ndarray, end: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    dot = np.sum(start * end, axis=-1)
    end = np.where(dot[..., None] < 0, -end, end)
    angle = np.arccos(np.clip(np.abs(dot), 0.0, 1.0))
    sine = np.sin(angle)
    close = sine < 1e-6  # nearly equal rotations: linear interpolation is exact enough
    safe_sine = np.where(close, 1.0, sine)
    start_weight = np.where(close, 1 - alpha, np.sin((1 - alpha) * angle) / safe_sine)
    end_weight = np.where(close, alpha, np.sin(alpha * angle) / safe_sine)
    blended = start_weight[..., None] * start + end_weight[..., None] * end
    return blended / np.linalg.norm(blended, axis=-1, keepdims=True)


def find_urdf(motion_dir: Path) -> Path:
    """The humanoid.urdf beside the motion files, else where pybullet_data keeps it."""
    candidates = (motion_dir / "humanoid.urdf", motion_dir.parent.parent / "humanoid" / "humanoid.urdf")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataError(f"no humanoid.urdf for the motions in {motion_dir}: "
                    f"looked for {' and '.join(map(str, candidates))}")


def _floats(text: str | None, default: str, where: str) -> np.ndarray:
    """A URDF attribute of space-separated numbers; a missing attribute takes the URDF default."""
    count = len(default.split())
    try:
        values = np.array((default if text is None else text).split(), dtype=np.float64)
    except ValueError:
        values = np.array([])
    if values.shape != (count,):
        raise DataError(f"{where} must hold {count} numbers, found '{text}'")
    return values


def parse_urdf(path: Path) -> Humanoid:
    """The humanoid's joints and head sphere. The file is text with stray binary bytes (a
    trailing NUL in pybullet's copy), so undecodable bytes and NULs are dropped first."""
    text = path.read_bytes().decode("utf-8", errors="ignore").replace("\x00", "")
    try:
        robot = ElementTree.fromstring(text)
    except ElementTree.ParseError as err:
        raise DataError(f"{path} is not a readable URDF: {err}") from None
    joints = {}
    for joint in robot.iter("joint"):
        name = joint.get("name")
        parent, child, origin = joint.find("parent"), joint.find("child"), joint.find("origin")
        if parent is None or child is None:
            raise DataError(f"{path}: joint '{name}' lacks its parent or child link")
        where = f"{path}: joint '{name}'"
        xyz = _floats(None if origin is None else origin.get("xyz"), "0 0 0", f"{where} origin xyz")
        rpy = _floats(None if origin is None else origin.get("rpy"), "0 0 0", f"{where} origin rpy")
        axis_element = joint.find("axis")
        axis = _floats(None if axis_element is None else axis_element.get("xyz"), "1 0 0", f"{where} axis")
        joints[child.get("link")] = _Link(child.get("link"), parent.get("link"), xyz * URDF_SCALE,
                                          _quat_from_rpy(*rpy), axis / max(np.linalg.norm(axis), 1e-12))
    links, placed = [], {"root"}
    for name in [name for name, _ in _FRAME_JOINTS] + list(_FIXED_LINKS):
        if name not in joints:
            raise DataError(f"{path} has no joint moving the link '{name}' (is it the DeepMimic humanoid?)")
        if joints[name].parent not in placed:
            raise DataError(f"{path}: link '{name}' hangs from '{joints[name].parent}', "
                            "which is not in the humanoid's tree")
        links.append(joints[name])
        placed.add(name)
    sphere = robot.find("link[@name='neck']/collision/geometry/sphere")
    sphere_origin = robot.find("link[@name='neck']/collision/origin")
    if sphere is None:
        raise DataError(f"{path}: the 'neck' link has no sphere collision shape (the head)")
    centre = _floats(None if sphere_origin is None else sphere_origin.get("xyz"), "0 0 0",
                     f"{path}: head sphere origin")
    radius = _floats(sphere.get("radius"), "nan", f"{path}: head sphere radius")[0]
    if not radius > 0:
        raise DataError(f"{path}: the head sphere needs a positive radius, found '{sphere.get('radius')}'")
    return Humanoid(tuple(links), centre * URDF_SCALE, float(radius * URDF_SCALE))


def _read_frames(path: Path) -> np.ndarray:
    """The motion file's frames [F, 44], checked."""
    try:
        motion = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"motion file {path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"motion file {path} is not valid JSON: {err}") from None
    if not isinstance(motion, dict) or not isinstance(motion.get("Frames"), list):
        raise DataError(f"motion file {path} must be a JSON object with a 'Frames' list")
    if not motion["Frames"]:
        raise DataError(f"motion file {path} has no frames")
    try:
        frames = np.array(motion["Frames"], dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"motion file {path}: every frame must be a list of {FRAME_COLUMNS} numbers") from None
    if frames.ndim != 2 or frames.shape[1] != FRAME_COLUMNS:
        columns = frames.shape[1] if frames.ndim == 2 else "nested"
        raise DataError(f"motion file {path}: frames have {columns} columns, expected {FRAME_COLUMNS} (duration, "
                        f"root position and rotation, then the DeepMimic humanoid's 12 joint rotations)")
    if not np.isfinite(frames).all():
        first = int(np.argwhere(~np.isfinite(frames))[0][0])
        raise DataError(f"motion file {path} contains NaN or Inf (first in frame {first})")
    if (frames[:, 0] < 0).any():
        raise DataError(f"motion file {path} has negative frame durations")
    return frames


def _channels(frames: np.ndarray, path: Path) -> dict[str, np.ndarray]:
    """Split frames into named channels: root position, quaternions (unit) and revolute angles."""
    channels = {"root_position": frames[:, 1:4], "root": frames[:, 4:8]}
    column = 8
    for name, width in _FRAME_JOINTS:
        channels[name] = frames[:, column] if width == 1 else frames[:, column:column + width]
        column += width
    for name, values in channels.items():
        if values.ndim == 2 and values.shape[1] == 4:
            norm = np.linalg.norm(values, axis=1, keepdims=True)
            if (norm < 1e-6).any():
                raise DataError(f"motion file {path}: the '{name}' rotation is a zero quaternion "
                                f"in frame {int(np.argmin(norm))}")
            channels[name] = values / norm
    return channels


def _resample(channels: dict[str, np.ndarray], durations: np.ndarray, fps: float) -> dict[str, np.ndarray]:
    """Channels at fps over the motion's span: slerp for rotations, linear for the rest, so the
    skeleton stays rigid. A frame's duration is the time until the next frame."""
    times = np.concatenate([[0.0], np.cumsum(durations[:-1])])
    sample_times = np.arange(int(np.floor(times[-1] * fps + 1e-2)) + 1) / fps
    before = np.clip(np.searchsorted(times, sample_times, side="right") - 1, 0, len(times) - 1)
    after = np.minimum(before + 1, len(times) - 1)
    gap = times[after] - times[before]
    alpha = np.where(gap > 0, (sample_times - times[before]) / np.where(gap > 0, gap, 1.0), 0.0).clip(0, 1)
    resampled = {}
    for name, values in channels.items():
        if values.ndim == 2 and values.shape[1] == 4:
            resampled[name] = _slerp(values[before], values[after], alpha)
        else:
            weight = alpha if values.ndim == 1 else alpha[:, None]
            resampled[name] = values[before] * (1 - weight) + values[after] * weight
    return resampled


def _forward_kinematics(humanoid: Humanoid, channels: dict[str, np.ndarray]) -> np.ndarray:
    """World joints [F, 17, 3] (metres, Y up) of the Human3.6M skeleton."""
    positions = {"root": channels["root_position"]}
    rotations = {"root": channels["root"]}
    for link in humanoid.links:
        motion = channels.get(link.name)
        if motion is None:
            local = link.orientation
        elif motion.ndim == 1:
            local = _quat_multiply(link.orientation, _quat_from_axis_angle(link.axis, motion))
        else:
            local = _quat_multiply(link.orientation, motion)
        parent_rotation = rotations[link.parent]
        positions[link.name] = positions[link.parent] + _quat_rotate(parent_rotation, link.origin)
        rotations[link.name] = _quat_multiply(parent_rotation, local)
    joints = np.zeros((len(channels["root"]), NUM_JOINTS, 3))
    for index, name in _H36M_LINKS.items():
        joints[:, index] = positions[name]
    for index, point in ((_NOSE, _NOSE_ON_HEAD), (_HEAD, _HEAD_TOP)):
        in_neck = humanoid.head_centre + humanoid.head_radius * point
        joints[:, index] = positions["neck"] + _quat_rotate(rotations["neck"], in_neck)
    return joints


def motion_joints(path: Path, humanoid: Humanoid, fps: float) -> np.ndarray:
    """World joints [F, 17, 3] of one motion file on an already parsed humanoid."""
    frames = _read_frames(path)
    return _forward_kinematics(humanoid, _resample(_channels(frames, path), frames[:, 0], fps))


def check_fps(fps: float) -> None:
    if not fps > 0:
        raise DataError(f"fps must be positive, got {fps}")


def load_motion(path: str | Path, fps: float = 30.0) -> np.ndarray:
    """World joints [F, 17, 3] in metres (Y up) of one DeepMimic motion file, resampled to fps.
    The humanoid.urdf is looked for beside the file or in the pybullet_data layout."""
    check_fps(fps)
    path = Path(path)
    return motion_joints(path, parse_urdf(find_urdf(path.parent)), fps)


def rest_stature(humanoid: Humanoid) -> float:
    """Ankle-to-crown height of the humanoid standing in its rest pose, in metres."""
    rest = {"root_position": np.zeros((1, 3)), "root": np.array([[1.0, 0.0, 0.0, 0.0]])}
    for name, width in _FRAME_JOINTS:
        rest[name] = np.zeros(1) if width == 1 else np.array([[1.0, 0.0, 0.0, 0.0]])
    joints = _forward_kinematics(humanoid, rest)[0]
    return float(joints[_HEAD, 1] - joints[list(_ANKLES), 1].min())
