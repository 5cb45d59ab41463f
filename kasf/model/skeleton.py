"""The Human3.6M 17-joint skeleton: joints, parents, bones, limbs, mirroring, COCO-17 input.

Every table here is data the rest of kasf reads; nothing else hard-codes a joint index.
"""

from __future__ import annotations

import numpy as np

JOINT_NAMES = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "spine", "thorax", "neck", "head", "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist",
)
NUM_JOINTS = len(JOINT_NAMES)
ROOT = 0

# PARENTS[j] is the parent of joint j; the root has none.
PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)

# Bone i joins proximal joint BONE_PROXIMAL[i] to distal joint i + 1 (16 bones, one per non-root joint).
BONE_PROXIMAL = tuple(PARENTS[1:])
BONE_DISTAL = tuple(range(1, NUM_JOINTS))
NUM_BONES = len(BONE_PROXIMAL)

# Mirror pairs: flipping swaps each right joint with its left twin.
FLIP_RIGHT = (1, 2, 3, 14, 15, 16)
FLIP_LEFT = (4, 5, 6, 11, 12, 13)

# LimbFus member lists as the released checkpoints use them. The paper reads the entries as bone
# indices; the released code gathers raw joints with the same lists. Limb 14's list is kept as
# trained ([11, 12, 4, 5]) although its comment in the authors' code says left arm + right leg.
LIMBS = (
    (0, 1, 2), (3, 4, 5), (6, 7), (8, 9), (10, 11, 12), (13, 14, 15),
    (6, 7, 1, 2), (6, 7, 4, 5), (6, 7, 11, 12), (6, 7, 14, 15), (6, 7, 9),
    (14, 15, 11, 12), (1, 2, 4, 5), (14, 15, 4, 5), (11, 12, 4, 5),
    (10, 0), (13, 3),
)

UPPER_BODY = tuple(range(7, 17))
LOWER_BODY = tuple(range(1, 7))

# COCO-17 keypoints copied one-to-one into H36M joints; pelvis, spine, thorax and head are made.
COCO_TO_H36M = {0: 9, 5: 11, 6: 14, 7: 12, 8: 15, 9: 13, 10: 16, 11: 4, 12: 1, 13: 5, 14: 2, 15: 6, 16: 3}
COCO_NOSE, COCO_EYES, COCO_EARS = 0, (1, 2), (3, 4)
COCO_SHOULDERS, COCO_HIPS = (5, 6), (11, 12)


def _flip_permutation() -> list[int]:
    perm = list(range(NUM_JOINTS))
    for right, left in zip(FLIP_RIGHT, FLIP_LEFT):
        perm[right], perm[left] = left, right
    return perm


FLIP_PERMUTATION = _flip_permutation()


def adjacency() -> np.ndarray:
    """Symmetric 0/1 skeleton adjacency from the parent table, no self loops."""
    adj = np.zeros((NUM_JOINTS, NUM_JOINTS), dtype=np.float32)
    for child, parent in enumerate(PARENTS):
        if parent >= 0:
            adj[child, parent] = adj[parent, child] = 1.0
    return adj


def flip(poses):
    """Mirror poses left-right: negate x and swap left/right joints. Works on [..., 17, C]
    numpy arrays or torch tensors (2D keypoints with confidence or 3D poses)."""
    out = poses[..., FLIP_PERMUTATION, :]
    out[..., 0] = -out[..., 0]
    return out


def coco_to_h36m(keypoints: np.ndarray) -> np.ndarray:
    """Convert COCO-17 keypoints [..., 17, C] (x, y[, confidence]) to H36M-17.

    Pelvis is the mean of the hips, thorax the shoulder midpoint, spine the midpoint of pelvis
    and thorax; head is placed above the nose by the eye/ear distance. A synthesised joint's
    confidence is the mean of its sources' confidences.
    """
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if keypoints.ndim < 2 or keypoints.shape[-2] != 17 or keypoints.shape[-1] not in (2, 3):
        raise ValueError(f"COCO keypoints must have shape [..., 17, 2|3], got {list(keypoints.shape)}")
    out = np.zeros(keypoints.shape, dtype=np.float32)
    for coco, h36m in COCO_TO_H36M.items():
        out[..., h36m, :] = keypoints[..., coco, :]
    out[..., 0, :] = keypoints[..., COCO_HIPS, :].mean(axis=-2)
    out[..., 8, :] = keypoints[..., COCO_SHOULDERS, :].mean(axis=-2)
    out[..., 7, :] = (out[..., 0, :] + out[..., 8, :]) / 2
    nose = keypoints[..., COCO_NOSE, :]
    eyes = keypoints[..., COCO_EYES, :].mean(axis=-2)
    ears = keypoints[..., COCO_EARS, :].mean(axis=-2)
    # The crown sits above the eyes by about the eye-to-ear span, along the thorax-to-nose
    # direction, so it tilts with the head instead of assuming an upright camera.
    up = nose[..., :2] - out[..., 8, :2]
    up /= np.maximum(np.linalg.norm(up, axis=-1, keepdims=True), 1e-6)
    span = np.linalg.norm(ears[..., :2] - eyes[..., :2], axis=-1, keepdims=True)
    out[..., 10, :2] = eyes[..., :2] + up * span
    if keypoints.shape[-1] == 3:
        out[..., 10, 2] = (nose[..., 2] + keypoints[..., COCO_EYES, 2].sum(-1) + keypoints[..., COCO_EARS, 2].sum(-1)) / 5
    return out
