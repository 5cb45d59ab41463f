"""The motion-capture source: every (motion, camera) pair of a split projected into the authors'
source-pickle arrays, and its cache, keyed by the options and the input files' contents."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import warnings
import zlib
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ...errors import DataError
from ...files import atomic_write, default_cache_dir
from ...keypoints.skeleton import ROOT
from .cameras import project, random_view
from .detector import GROUND_TRUTH_2D, DetectorErrors, detector_noise
from .kinematics import check_fps, find_urdf, motion_joints, parse_urdf, rest_stature

MOTIONS = (
    "backflip", "cartwheel", "crawl", "dance_a", "dance_b", "getup_facedown", "getup_faceup", "jump",
    "kick", "punch", "roll", "run", "spin", "spinkick", "walk",
)
DEFAULT_SPLIT = {
    "train": ("backflip", "cartwheel", "crawl", "dance_a", "getup_facedown", "kick", "roll", "spin", "walk"),
    "validation": ("jump", "punch"),
    "test": ("run", "spinkick", "dance_b", "getup_faceup"),
}
# Views per motion: one performer and nine training motions need many viewpoints to generalise.
DEFAULT_CAMERAS = 32

_CACHE_FORMAT = 1


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


def _check_options(cameras_per_motion: int, detector_errors: DetectorErrors, fps: float) -> None:
    if cameras_per_motion < 1:
        raise DataError(f"cameras_per_motion must be at least 1, got {cameras_per_motion}")
    if not isinstance(detector_errors, DetectorErrors):
        raise DataError("detector_errors must be a DetectorErrors (e.g. DETECTOR_ERRORS['typical']), "
                        f"got {detector_errors!r}")
    check_fps(fps)


def _stable_code(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def build_mocap_source(motion_dir: str | Path | None = None,
                       split: Mapping[str, Sequence[str]] = DEFAULT_SPLIT,
                       cameras_per_motion: int = DEFAULT_CAMERAS,
                       detector_errors: DetectorErrors = GROUND_TRUTH_2D, fps: float = 30.0,
                       seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Per-frame arrays in the authors' source-pickle format, one dict per split.

    Each (motion, camera) pair is one sequence, "<motion>/cam<k>". Cameras and noise are drawn
    from the seed, the split's name and the motion's name, so a split's data does not change
    when other splits do (the test split's detector errors are its own draws, too). Active
    errors (kasf.data.mocap.detector) replace joint_2d by detector-like 2D and add a
    'confidence' key; the default is the ground-truth 2D.
    """
    _check_options(cameras_per_motion, detector_errors, fps)
    motion_dir = find_motion_dir(motion_dir)
    _check_split(split, motion_dir)
    humanoid = parse_urdf(find_urdf(motion_dir))
    stature = rest_stature(humanoid)
    source = {}
    for split_name, motions in split.items():
        parts = []
        for motion in motions:
            joints = motion_joints(_motion_path(motion_dir, motion), humanoid, fps)
            streams = np.random.SeedSequence([seed, _stable_code(split_name), _stable_code(motion)]).spawn(2)
            camera_rng, noise_rng = (np.random.default_rng(stream) for stream in streams)
            for camera in range(cameras_per_motion):
                camera_joints, focal = random_view(camera_rng, joints)
                arrays = project(camera_joints, focal)
                if detector_errors.active:
                    person_height = focal * stature / camera_joints[:, ROOT, 2]
                    arrays["joint_2d"], arrays["confidence"] = detector_noise(
                        noise_rng, arrays["joint_2d"], person_height, detector_errors)
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
    digest.update(find_urdf(motion_dir).read_bytes())
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

    def write(temporary: str) -> None:
        with open(temporary, "wb") as handle:  # a handle: given a name, savez would append .npz to it
            np.savez(handle, **arrays)

    try:
        atomic_write(path, write)
    except OSError as err:
        warnings.warn(f"could not cache the motion capture in {path.parent} ({err}); it is rebuilt next time")


def load_mocap_source(motion_dir: str | Path | None = None,
                      split: Mapping[str, Sequence[str]] = DEFAULT_SPLIT,
                      cameras_per_motion: int = DEFAULT_CAMERAS,
                      detector_errors: DetectorErrors = GROUND_TRUTH_2D, fps: float = 30.0, seed: int = 0,
                      cache_dir: str | Path | None = None) -> dict[str, dict[str, np.ndarray]]:
    """build_mocap_source, cached under cache_dir (default: default_cache_dir()).

    The cache key covers the arguments and the contents of the motion and URDF files, so edited
    files or options give a fresh build; an unreadable cache file is rebuilt and replaced.
    """
    _check_options(cameras_per_motion, detector_errors, fps)
    resolved_dir = find_motion_dir(motion_dir)
    _check_split(split, resolved_dir)
    options = {"cameras_per_motion": int(cameras_per_motion), "fps": float(fps), "seed": int(seed)}
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
    key = _cache_key(resolved_dir, split, {**options, "detector_errors": detector_errors.to_dict()})
    path = cache_dir / f"mocap-{key}.npz"
    source = _read_cache(path)
    if source is None:
        source = build_mocap_source(resolved_dir, split, detector_errors=detector_errors, **options)
        _write_cache(path, source)
    return source
