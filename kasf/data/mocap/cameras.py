"""Static pinhole cameras around a motion: the 2.5D arrays of the authors' source pickles."""

from __future__ import annotations

import numpy as np

from ...keypoints.skeleton import ROOT

RESOLUTION = (1920, 1080)

# Camera sampling ranges (degrees) and framing.
_HORIZONTAL_FOV = (50.0, 75.0)
_ELEVATION = (-5.0, 30.0)
_ROLL = (-5.0, 5.0)
_IMAGE_MARGIN = 0.1      # joints stay inside the central 90% of each image axis
_NEAREST_DEPTH = 1.0     # metres between the camera and the nearest joint, at least
_EXTRA_DISTANCE = (1.0, 1.4)
_UP = np.array([0.0, 1.0, 0.0])


def _look_at(forward: np.ndarray, roll: float) -> np.ndarray:
    """World -> camera rotation (rows: image right, image down, viewing direction)."""
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, _UP)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    cos, sin = np.cos(roll), np.sin(roll)
    rolled = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    return rolled @ np.stack([right, down, forward])


def random_view(rng: np.random.Generator, joints: np.ndarray) -> tuple[np.ndarray, float]:
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


def project(camera_joints: np.ndarray, focal: float) -> dict[str, np.ndarray]:
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

