"""The embedded default dataset: real motion capture seen through virtual cameras.

pybullet ships 15 DeepMimic humanoid clips (humanoid3d_*.txt) with the humanoid's URDF. Each
frame holds the root position and joint rotations; forward kinematics on the URDF turns them into
world joints, mapped onto the Human3.6M-17 skeleton. Static pinhole cameras around each motion
then give exactly what the authors' source pickles hold (joint_2d, joint3d_image, 2.5d_factor,
joints_2.5d_image), so the same readers and training loop work on data anyone can install.
Splits are by motion, so no movement is seen in two splits.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
import warnings
import xml.etree.ElementTree as ElementTree
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import DataError
from ..model.skeleton import NUM_JOINTS, ROOT

MOTIONS = (
    "backflip", "cartwheel", "crawl", "dance_a", "dance_b", "getup_facedown", "getup_faceup", "jump",
    "kick", "punch", "roll", "run", "spin", "spinkick", "walk",
)
DEFAULT_SPLIT = {
    "train": ("backflip", "cartwheel", "crawl", "dance_a", "getup_facedown", "kick", "roll", "spin", "walk"),
    "validation": ("jump", "punch"),
    "test": ("run", "spinkick", "dance_b", "getup_faceup"),
}
RESOLUTION = (1920, 1080)
# Views per motion: one performer and nine training motions need many viewpoints to generalise.
DEFAULT_CAMERAS = 32

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

# Camera sampling ranges (degrees) and framing.
_HORIZONTAL_FOV = (50.0, 75.0)
_ELEVATION = (-5.0, 30.0)
_ROLL = (-5.0, 5.0)
_IMAGE_MARGIN = 0.1      # joints stay inside the central 90% of each image axis
_NEAREST_DEPTH = 1.0     # metres between the camera and the nearest joint, at least
_EXTRA_DISTANCE = (1.0, 1.4)
_UP = np.array([0.0, 1.0, 0.0])

# Detector-like noise: jitter of noise_px for a person as tall as the image, scaled with the
# person's height in the image; a few joints jump much further, as detectors' mistakes do.
_OUTLIER_RATE = 0.02
_OUTLIER_SIGMAS = (5.0, 15.0)
_CONFIDENCE_SIGMAS = 3.0  # error (in jitter sigmas) at which confidence falls to 0.5

_CACHE_FORMAT = 1


@dataclass(frozen=True)
class _Link:
    """One URDF joint and the link it moves, in metres."""

    name: str
    parent: str
    origin: np.ndarray        # [3] joint position in the parent link frame
    orientation: np.ndarray   # [4] fixed joint-frame rotation (URDF rpy) as a quaternion
    axis: np.ndarray          # [3] rotation axis of a revolute joint


@dataclass(frozen=True)
class _Humanoid:
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


def find_motion_dir(motion_dir: str | Path | None = None) -> Path:
    """The directory of humanoid3d_*.txt clips: the one given, else the installed pybullet_data's."""
    if motion_dir is not None:
        path = Path(motion_dir).expanduser()
        if not path.is_dir():
            raise DataError(f"motion directory {path} does not exist")
    else:
        spec = importlib.util.find_spec("pybullet_data")
        if spec is None or not spec.submodule_search_locations:
            raise DataError("the default motion capture needs the DeepMimic clips of the pybullet package: "
                            "pip install pybullet, or pass a directory of humanoid3d_*.txt files and humanoid.urdf")
        path = Path(next(iter(spec.submodule_search_locations))) / "data" / "motions"
    if not any(path.glob("humanoid3d_*.txt")):
        raise DataError(f"motion directory {path} holds no humanoid3d_*.txt motion files")
    return path


def _find_urdf(motion_dir: Path) -> Path:
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


def _parse_urdf(path: Path) -> _Humanoid:
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
    return _Humanoid(tuple(links), centre * URDF_SCALE, float(radius * URDF_SCALE))


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


def _forward_kinematics(humanoid: _Humanoid, channels: dict[str, np.ndarray]) -> np.ndarray:
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


def _motion_joints(path: Path, humanoid: _Humanoid, fps: float) -> np.ndarray:
    frames = _read_frames(path)
    return _forward_kinematics(humanoid, _resample(_channels(frames, path), frames[:, 0], fps))


def _check_fps(fps: float) -> None:
    if not fps > 0:
        raise DataError(f"fps must be positive, got {fps}")


def load_motion(path: str | Path, fps: float = 30.0) -> np.ndarray:
    """World joints [F, 17, 3] in metres (Y up) of one DeepMimic motion file, resampled to fps.
    The humanoid.urdf is looked for beside the file or in the pybullet_data layout."""
    _check_fps(fps)
    path = Path(path)
    return _motion_joints(path, _parse_urdf(_find_urdf(path.parent)), fps)


def _stature(humanoid: _Humanoid) -> float:
    """Ankle-to-crown height of the humanoid standing in its rest pose, in metres."""
    rest = {"root_position": np.zeros((1, 3)), "root": np.array([[1.0, 0.0, 0.0, 0.0]])}
    for name, width in _FRAME_JOINTS:
        rest[name] = np.zeros(1) if width == 1 else np.array([[1.0, 0.0, 0.0, 0.0]])
    joints = _forward_kinematics(humanoid, rest)[0]
    return float(joints[_HEAD, 1] - joints[list(_ANKLES), 1].min())


def _look_at(forward: np.ndarray, roll: float) -> np.ndarray:
    """World -> camera rotation (rows: image right, image down, viewing direction)."""
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, _UP)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    cos, sin = np.cos(roll), np.sin(roll)
    rolled = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    return rolled @ np.stack([right, down, forward])


def _random_view(rng: np.random.Generator, joints: np.ndarray) -> tuple[np.ndarray, float]:
    """The motion in a random static camera's coordinates (X right, Y down, Z forward; metres)
    and its focal length in pixels. The camera looks at the mean root from far enough away that
    every joint of every frame stays inside the image."""
    width, height = RESOLUTION
    focal = width / 2 / np.tan(np.radians(rng.uniform(*_HORIZONTAL_FOV)) / 2)
    azimuth = rng.uniform(0.0, 2 * np.pi)
    elevation = np.radians(rng.uniform(*_ELEVATION))
    roll = np.radians(rng.uniform(*_ROLL))
    extra_distance = rng.uniform(*_EXTRA_DISTANCE)
    target = joints[:, ROOT].mean(axis=0)
    toward_camera = np.array([np.cos(elevation) * np.cos(azimuth), np.sin(elevation),
                              np.cos(elevation) * np.sin(azimuth)])
    centred = (joints - target) @ _look_at(-toward_camera, roll).T
    half_extent = np.array([width, height]) / 2 * (1 - _IMAGE_MARGIN)
    # At distance d a joint projects to focal * xy / (z + d): inside the margin once d is at least this.
    fits = np.abs(centred[..., :2]) * focal / half_extent - centred[..., 2:]
    distance = max(fits.max(), (_NEAREST_DEPTH - centred[..., 2]).max()) * extra_distance
    return centred + np.array([0.0, 0.0, distance]), float(focal)


def _project(camera_joints: np.ndarray, focal: float) -> dict[str, np.ndarray]:
    """The authors' 2.5D arrays from camera-frame joints [N, 17, 3] (metres)."""
    principal = np.array(RESOLUTION) / 2
    depth = camera_joints[..., 2:]
    root_depth = depth[:, ROOT:ROOT + 1]
    pixels = focal * camera_joints[..., :2] / depth + principal
    image = np.concatenate([pixels, (depth - root_depth) * focal / root_depth], axis=-1)
    factor = root_depth[:, 0, 0] * 1000 / focal
    return {
        "joint_2d": pixels.astype(np.float32),
        "joint3d_image": image.astype(np.float32),
        "2.5d_factor": factor.astype(np.float32),
        "joints_2.5d_image": (image * factor[:, None, None]).astype(np.float32),
    }


def _detector_noise(rng: np.random.Generator, pixels: np.ndarray, person_height: np.ndarray,
                    noise_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Noisy 2D [N, 17, 2] and a confidence [N, 17] in (0, 1] that falls as the error grows."""
    sigma = noise_px * person_height[:, None] / RESOLUTION[1]
    offset = rng.normal(size=pixels.shape) * sigma[..., None]
    outlier = rng.random(pixels.shape[:2]) < _OUTLIER_RATE
    direction = rng.normal(size=pixels.shape)
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    jump = direction * (rng.uniform(*_OUTLIER_SIGMAS, size=pixels.shape[:2]) * sigma)[..., None]
    offset = np.where(outlier[..., None], jump, offset)
    error = np.linalg.norm(offset, axis=-1)
    confidence = 1 / (1 + (error / (_CONFIDENCE_SIGMAS * sigma)) ** 2)
    return (pixels + offset).astype(np.float32), confidence.astype(np.float32)


def _motion_path(motion_dir: Path, motion: str) -> Path:
    return motion_dir / f"humanoid3d_{motion}.txt"


def _check_split(split: Mapping[str, Sequence[str]], motion_dir: Path) -> None:
    seen: dict[str, str] = {}
    for name, motions in split.items():
        if isinstance(motions, str) or not motions:
            raise DataError(f"split '{name}' must list one or more motion names, got {motions!r}")
        for motion in motions:
            if motion in seen:
                raise DataError(f"motion '{motion}' is in both split '{seen[motion]}' and split '{name}': "
                                "a motion belongs to one split only")
            path = _motion_path(motion_dir, motion)
            if not path.is_file():
                raise DataError(f"split '{name}' names motion '{motion}', but {path} does not exist")
            seen[motion] = name


def _check_options(cameras_per_motion: int, noise_px: float, fps: float) -> None:
    if cameras_per_motion < 1:
        raise DataError(f"cameras_per_motion must be at least 1, got {cameras_per_motion}")
    if not noise_px >= 0:
        raise DataError(f"noise_px must be zero or positive, got {noise_px}")
    _check_fps(fps)


def _stable_code(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def build_mocap_source(motion_dir: str | Path | None = None,
                       split: Mapping[str, Sequence[str]] = DEFAULT_SPLIT,
                       cameras_per_motion: int = DEFAULT_CAMERAS, noise_px: float = 0.0, fps: float = 30.0,
                       seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Per-frame arrays in the authors' source-pickle format, one dict per split.

    Each (motion, camera) pair is one sequence, "<motion>/cam<k>". Cameras and noise are drawn
    from the seed, the split's name and the motion's name, so a split's data does not change
    when other splits do. noise_px > 0 adds detector-like 2D noise and a 'confidence' key:
    noise_px is the jitter's standard deviation for a person as tall as the image (1080 px),
    scaled with the person's height in the image, with rare outliers several times larger.
    """
    _check_options(cameras_per_motion, noise_px, fps)
    motion_dir = find_motion_dir(motion_dir)
    _check_split(split, motion_dir)
    humanoid = _parse_urdf(_find_urdf(motion_dir))
    stature = _stature(humanoid)
    source = {}
    for split_name, motions in split.items():
        parts = []
        for motion in motions:
            joints = _motion_joints(_motion_path(motion_dir, motion), humanoid, fps)
            streams = np.random.SeedSequence([seed, _stable_code(split_name), _stable_code(motion)]).spawn(2)
            camera_rng, noise_rng = (np.random.default_rng(stream) for stream in streams)
            for camera in range(cameras_per_motion):
                camera_joints, focal = _random_view(camera_rng, joints)
                arrays = _project(camera_joints, focal)
                if noise_px > 0:
                    person_height = focal * stature / camera_joints[:, ROOT, 2]
                    arrays["joint_2d"], arrays["confidence"] = _detector_noise(
                        noise_rng, arrays["joint_2d"], person_height, noise_px)
                arrays["source"] = np.full(len(joints), f"{motion}/cam{camera}")
                arrays["camera_name"] = np.full(len(joints), "mocap")
                arrays["action"] = np.full(len(joints), motion)
                parts.append(arrays)
        source[split_name] = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    return source


def _cache_key(motion_dir: Path, split: Mapping[str, Sequence[str]], options: dict) -> str:
    digest = hashlib.sha256()
    settings = {"format": _CACHE_FORMAT, "split": {name: list(motions) for name, motions in split.items()}, **options}
    digest.update(json.dumps(settings, sort_keys=True).encode("utf-8"))
    for motion in sorted({motion for motions in split.values() for motion in motions}):
        digest.update(motion.encode("utf-8"))
        digest.update(_motion_path(motion_dir, motion).read_bytes())
    digest.update(_find_urdf(motion_dir).read_bytes())
    return digest.hexdigest()[:24]


def _read_cache(path: Path) -> dict[str, dict[str, np.ndarray]] | None:
    """The cached source, or None when it is missing or unreadable (it is then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            source: dict[str, dict[str, np.ndarray]] = {}
            for name in archive.files:
                split_name, _, key = name.rpartition("/")
                source.setdefault(split_name, {})[key] = archive[name]
    except Exception:  # a truncated or foreign file fails anywhere from the zip index to an array
        return None
    return source


def _write_cache(path: Path, source: dict[str, dict[str, np.ndarray]]) -> None:
    """Write atomically, so a reader (another training process) never sees half a file. The
    cache only saves time, so a directory that cannot be written is a warning, not an error."""
    arrays = {f"{split_name}/{key}": array for split_name, split in source.items() for key, array in split.items()}
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name, suffix=".tmp", delete=False) as handle:
            temporary = Path(handle.name)
            np.savez(handle, **arrays)
        os.replace(temporary, path)
    except OSError as err:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        warnings.warn(f"could not cache the motion capture in {path.parent} ({err}); it is rebuilt next time")


def default_cache_dir() -> Path:
    """$KASF_CACHE_DIR, else ~/.cache/kasf."""
    return Path(os.environ.get("KASF_CACHE_DIR") or Path.home() / ".cache" / "kasf").expanduser()


def load_mocap_source(motion_dir: str | Path | None = None,
                      split: Mapping[str, Sequence[str]] = DEFAULT_SPLIT,
                      cameras_per_motion: int = DEFAULT_CAMERAS, noise_px: float = 0.0, fps: float = 30.0,
                      seed: int = 0, cache_dir: str | Path | None = None) -> dict[str, dict[str, np.ndarray]]:
    """build_mocap_source, cached under cache_dir (default: default_cache_dir()).

    The cache key covers the arguments and the contents of the motion and URDF files, so edited
    files or options give a fresh build; an unreadable cache file is rebuilt and replaced.
    """
    _check_options(cameras_per_motion, noise_px, fps)
    resolved_dir = find_motion_dir(motion_dir)
    _check_split(split, resolved_dir)
    options = {"cameras_per_motion": int(cameras_per_motion), "noise_px": float(noise_px), "fps": float(fps),
               "seed": int(seed)}
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
    path = cache_dir / f"mocap-{_cache_key(resolved_dir, split, options)}.npz"
    source = _read_cache(path)
    if source is None:
        source = build_mocap_source(resolved_dir, split, **options)
        _write_cache(path, source)
    return source
