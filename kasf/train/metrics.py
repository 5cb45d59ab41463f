"""Evaluation metrics in millimetres on numpy poses [..., T, 17, 3] (root-relative).

The paper's protocol: MPJPE, P-MPJPE (per-frame similarity Procrustes with the reflection fix),
acceleration error; per joint, upper body (joints 7-16), lower body (1-6); per action, then the
action-balanced mean (each action weighs the same, whatever its number of clips).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..errors import InputError
from ..keypoints.skeleton import JOINT_NAMES, LOWER_BODY, UPPER_BODY


def _check_pair(predicted: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predicted = np.asarray(predicted, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if predicted.shape != target.shape or predicted.ndim < 2 or predicted.shape[-1] != 3:
        raise InputError(f"predicted {list(predicted.shape)} and target {list(target.shape)} must both be [..., J, 3]")
    return predicted, target


def joint_errors(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Euclidean error per joint: [..., J, 3] -> [..., J]."""
    predicted, target = _check_pair(predicted, target)
    return np.linalg.norm(predicted - target, axis=-1)


def mpjpe(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-pose mean joint error: [..., J, 3] -> [...]."""
    return joint_errors(predicted, target).mean(axis=-1)


def procrustes_align(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Align each predicted pose to its target by the best scale, rotation and translation.
    A reflection is never allowed: if the best orthogonal map has det -1 its last axis is flipped."""
    predicted, target = _check_pair(predicted, target)
    mu_t = target.mean(axis=-2, keepdims=True)
    mu_p = predicted.mean(axis=-2, keepdims=True)
    t0, p0 = target - mu_t, predicted - mu_p
    norm_t = np.sqrt((t0 ** 2).sum(axis=(-2, -1), keepdims=True))
    norm_p = np.sqrt((p0 ** 2).sum(axis=(-2, -1), keepdims=True))
    t0, p0 = t0 / norm_t, p0 / norm_p
    u, s, vt = np.linalg.svd(np.swapaxes(t0, -1, -2) @ p0)
    v = np.swapaxes(vt, -1, -2)
    sign = np.sign(np.linalg.det(v @ np.swapaxes(u, -1, -2)))
    v[..., :, -1] *= sign[..., None]
    s[..., -1] *= sign
    rotation = v @ np.swapaxes(u, -1, -2)
    scale = s.sum(axis=-1)[..., None, None] * norm_t / norm_p
    return scale * ((predicted - mu_p) @ rotation) + mu_t


def p_mpjpe(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-pose MPJPE after Procrustes alignment: [..., J, 3] -> [...]."""
    return mpjpe(procrustes_align(predicted, target), target)


def acceleration_error(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean joint error of second differences over time: [..., T, J, 3] -> [..., T - 2]."""
    predicted, target = _check_pair(predicted, target)
    if predicted.ndim < 3 or predicted.shape[-3] < 3:
        raise InputError("acceleration error needs sequences of at least 3 frames [..., T, J, 3]")

    def accel(x):
        return x[..., :-2, :, :] - 2 * x[..., 1:-1, :, :] + x[..., 2:, :, :]

    return np.linalg.norm(accel(predicted) - accel(target), axis=-1).mean(axis=-1)


def per_action_means(values: np.ndarray, actions: Iterable[str]) -> tuple[dict[str, float], float]:
    """Mean of per-clip values for each action, and the mean over actions (action balanced)."""
    values = np.asarray(values, dtype=np.float64)
    actions = np.asarray(list(actions))
    if len(actions) != len(values):
        raise InputError(f"{len(values)} values but {len(actions)} action labels")
    means = {str(a): float(values[actions == a].mean()) for a in sorted(set(actions.tolist()))}
    return means, float(np.mean(list(means.values()))) if means else float("nan")


def error_tables(predicted: np.ndarray, target: np.ndarray, actions: Iterable[str] | None = None) -> dict:
    """The paper's tables for clips [N, T, 17, 3] in mm: overall, per joint, body parts, per action."""
    predicted, target = _check_pair(predicted, target)
    if predicted.ndim != 4:
        raise InputError(f"error_tables expects clips [N, T, J, 3], got {list(predicted.shape)}")
    errors = joint_errors(predicted, target)  # [N, T, J]
    clip_mpjpe = errors.mean(axis=(1, 2))
    clip_p_mpjpe = p_mpjpe(predicted, target).mean(axis=1)
    report = {
        "mpjpe": float(clip_mpjpe.mean()),
        "p_mpjpe": float(clip_p_mpjpe.mean()),
        "acceleration_error": float(acceleration_error(predicted, target).mean()) if predicted.shape[1] >= 3 else None,
        "upper_body": float(errors[..., list(UPPER_BODY)].mean()),
        "lower_body": float(errors[..., list(LOWER_BODY)].mean()),
    }
    if errors.shape[-1] == len(JOINT_NAMES):
        report["per_joint"] = dict(zip(JOINT_NAMES, errors.mean(axis=(0, 1)).tolist()))
    if actions is not None:
        actions = list(actions)
        report["per_action_mpjpe"], report["action_mean_mpjpe"] = per_action_means(clip_mpjpe, actions)
        report["per_action_p_mpjpe"], report["action_mean_p_mpjpe"] = per_action_means(clip_p_mpjpe, actions)
    return report
