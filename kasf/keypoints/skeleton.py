"""The Human3.6M 17-joint skeleton the model lifts: joints, parents, bones, limbs, mirroring.

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
