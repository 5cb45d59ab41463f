"""Detector keypoint layouts and their conversion to the Human3.6M-17 joints the model lifts.

A layout is its joint names in the detector's order. Twelve limb joints and the nose are copied
one to one; the joints Human3.6M has and most detectors lack are built:

- pelvis: the layout's mid-hip where it has one and saw it, else the mean of the two hips;
- thorax: the layout's neck (OpenPose, Halpe: at the base of the neck) where seen, else the
  shoulder midpoint;
- spine: the midpoint of pelvis and thorax;
- head (the crown): the layout's head top (BODY_25B, Halpe) where seen, else placed above the
  eyes by the eye-to-ear span, along the thorax-to-nose direction, so it tilts with the head;
- neck/nose (Human3.6M's joint 9): the nose.

A built joint's confidence is the mean of its sources'; it is missing (confidence 0) when one of
its sources is. Detectors write an unseen joint as confidence 0, and so does kasf.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .skeleton import JOINT_NAMES, NUM_JOINTS

COCO_17 = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
           "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
           "right_knee", "left_ankle", "right_ankle")
OPENPOSE_UPPER = ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
                  "left_wrist")
FEET = ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel")


@dataclass(frozen=True)
class Layout:
    """A detector's keypoints, in its order."""

    name: str
    title: str
    joints: tuple[str, ...]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "index", {joint: i for i, joint in enumerate(self.joints)})

    @property
    def size(self) -> int:
        return len(self.joints)


LAYOUTS = {layout.name: layout for layout in (
    Layout("h36m", "Human3.6M-17 (kasf's own order)", JOINT_NAMES),
    Layout("coco17", "COCO-17 (AlphaPose, MMPose/RTMPose, COCO results)", COCO_17),
    Layout("coco18", "OpenPose COCO-18", OPENPOSE_UPPER + (
        "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
        "right_eye", "left_eye", "right_ear", "left_ear")),
    Layout("body25", "OpenPose BODY_25", OPENPOSE_UPPER + (
        "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
        "right_eye", "left_eye", "right_ear", "left_ear") + FEET),
    Layout("body25b", "OpenPose BODY_25B", COCO_17 + ("upper_neck", "head_top") + FEET),
    Layout("halpe26", "AlphaPose Halpe-26", COCO_17 + (
        "head_top", "neck", "mid_hip", "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe",
        "left_heel", "right_heel")),
    Layout("wholebody133", "COCO-WholeBody-133 (RTMPose/DWPose; body and feet used)", COCO_17 + FEET + tuple(
        f"face_{i}" for i in range(68)) + tuple(f"{side}_hand_{i}" for side in ("left", "right") for i in range(21))),
)}

# Human3.6M joint <- the layout joint copied into it.
COPIED = {9: "nose", 11: "left_shoulder", 12: "left_elbow", 13: "left_wrist", 14: "right_shoulder",
          15: "right_elbow", 16: "right_wrist", 4: "left_hip", 5: "left_knee", 6: "left_ankle", 1: "right_hip",
          2: "right_knee", 3: "right_ankle"}


def get_layout(layout: str | Layout) -> Layout:
    if isinstance(layout, Layout):
        return layout
    if layout not in LAYOUTS:
        raise InputError(f"unknown keypoint layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    return LAYOUTS[layout]


def layouts_with(count: int) -> list[Layout]:
    """The layouts of `count` keypoints, Human3.6M's own last (a detector's 17 are COCO's)."""
    return sorted((layout for layout in LAYOUTS.values() if layout.size == count), key=lambda l: l.name == "h36m")


def _mean(points: list[np.ndarray]) -> np.ndarray:
    """The mean point; its confidence the mean of theirs, 0 where any of them is missing."""
    stacked = np.stack(points, axis=-2)
    out = stacked.mean(axis=-2)
    out[..., 2] = np.where((stacked[..., 2] > 0).all(axis=-1), out[..., 2], 0.0)
    return out


def _seen_or(provided: np.ndarray | None, fallback: np.ndarray) -> np.ndarray:
    if provided is None:
        return fallback
    return np.where(provided[..., 2:] > 0, provided, fallback)


def _seen_mean(points: list[np.ndarray]) -> np.ndarray:
    """The mean of the points seen (confidence > 0); missing where none is."""
    stacked = np.stack(points, axis=-2)
    seen = stacked[..., 2:] > 0
    count = seen.sum(axis=-2)
    out = np.where(seen, stacked, 0.0).sum(axis=-2) / np.maximum(count, 1)
    out[..., 2] = np.where(count[..., 0] > 0, out[..., 2], 0.0)
    return out


def _crown(nose: np.ndarray, eyes: np.ndarray, ears: np.ndarray, thorax: np.ndarray) -> np.ndarray:
    """The top of the head, above the eyes by the eye-to-ear span along thorax-to-nose."""
    up = nose[..., :2] - thorax[..., :2]
    up = up / np.maximum(np.linalg.norm(up, axis=-1, keepdims=True), 1e-6)
    span = np.linalg.norm(ears[..., :2] - eyes[..., :2], axis=-1, keepdims=True)
    crown = np.concatenate([eyes[..., :2] + up * span, np.zeros_like(span)], axis=-1)
    sources = np.stack([nose[..., 2], eyes[..., 2], ears[..., 2], thorax[..., 2]], axis=-1)
    crown[..., 2] = np.where((sources > 0).all(axis=-1), sources[..., :3].mean(axis=-1), 0.0)
    return crown


def to_h36m(keypoints: np.ndarray, layout: str | Layout) -> np.ndarray:
    """Keypoints [..., K, 2|3] (x, y[, confidence]) of a layout -> Human3.6M-17 [..., 17, 3].
    Without confidences every keypoint counts as seen (confidence 1)."""
    layout = get_layout(layout)
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if keypoints.ndim < 2 or keypoints.shape[-2] != layout.size or keypoints.shape[-1] not in (2, 3):
        raise InputError(f"{layout.title} keypoints must have shape [..., {layout.size}, 2|3], "
                         f"got {list(keypoints.shape)}")
    if keypoints.shape[-1] == 2:
        keypoints = np.concatenate([keypoints, np.ones(keypoints.shape[:-1] + (1,), np.float32)], axis=-1)
    if layout.name == "h36m":
        return keypoints.copy()

    def joint(name: str) -> np.ndarray | None:
        return keypoints[..., layout.index[name], :] if name in layout.index else None

    out = np.zeros(keypoints.shape[:-2] + (NUM_JOINTS, 3), dtype=np.float32)
    for h36m, name in COPIED.items():
        out[..., h36m, :] = joint(name)
    out[..., 0, :] = _seen_or(joint("mid_hip"), _mean([joint("left_hip"), joint("right_hip")]))
    out[..., 8, :] = _seen_or(joint("neck"), _mean([joint("left_shoulder"), joint("right_shoulder")]))
    out[..., 7, :] = _mean([out[..., 0, :], out[..., 8, :]])
    eyes = _seen_mean([joint("left_eye"), joint("right_eye")])
    ears = _seen_mean([joint("left_ear"), joint("right_ear")])
    out[..., 10, :] = _seen_or(joint("head_top"), _crown(joint("nose"), eyes, ears, out[..., 8, :]))
    return np.where(out[..., 2:] > 0, out, 0.0).astype(np.float32)


def h36m_keypoints(keypoints, where: str) -> np.ndarray:
    """One person's Human3.6M-17 keypoints as a real [17, 3] array (x, y, confidence), or an
    InputError naming `where` and, for another joint count, the converter."""
    try:
        array = np.asarray(keypoints)
    except ValueError as err:
        raise InputError(f"{where}: keypoints are not an array ({err})") from None
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise InputError(f"{where}: keypoints must be real numbers, got dtype {array.dtype}")
    if array.shape != (NUM_JOINTS, 3):
        raise InputError(f"{where}: keypoints must have shape [{NUM_JOINTS}, 3] (Human3.6M joints; x, y, "
                         f"confidence), got {list(array.shape)}; convert a detector's layout with "
                         "kasf.keypoints.to_h36m(keypoints, layout)")
    return array


def _mid_error(keypoints: np.ndarray, joint: int, left: int, right: int) -> np.ndarray:
    """How far a joint lies from the midpoint of two others, in units of their distance, for
    every person who has all three (nan elsewhere)."""
    seen = (keypoints[..., [joint, left, right], 2] > 0).all(axis=-1)
    mid = (keypoints[..., left, :2] + keypoints[..., right, :2]) / 2
    width = np.linalg.norm(keypoints[..., left, :2] - keypoints[..., right, :2], axis=-1)
    error = np.linalg.norm(keypoints[..., joint, :2] - mid, axis=-1) / np.maximum(width, 1e-6)
    return np.where(seen, error, np.nan)


def tell_25_point_layout(keypoints: np.ndarray) -> Layout | None:
    """BODY_25 or BODY_25B from the keypoints themselves [people, 25, 3]: BODY_25's neck and
    mid-hip (joints 1 and 8) sit midway between its shoulders (2, 5) and hips (9, 12); in
    BODY_25B those joints are an eye, an elbow, a shoulder, a wrist and a hip, which do not line
    up so. None when no person shows the joints needed."""
    keypoints = np.asarray(keypoints, np.float32).reshape(-1, 25, 3)
    errors = np.concatenate([_mid_error(keypoints, 1, 2, 5), _mid_error(keypoints, 8, 9, 12)])
    errors = errors[~np.isnan(errors)]
    if errors.size == 0:
        return None
    return LAYOUTS["body25"] if np.median(errors) < 0.35 else LAYOUTS["body25b"]
