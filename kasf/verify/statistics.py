"""The numbers parity is judged on: how far one set of poses is from another, joint by joint, and
the task metric's paired difference with a bootstrap interval over whole sequences."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..train.metrics import joint_errors, p_mpjpe
from ..keypoints.skeleton import JOINT_NAMES

QUANTILES = {"p50_mm": 50, "p90_mm": 90, "p99_mm": 99}
OFF_MM = 0.5          # a clip counts as moved when some joint of it is this far off
RESAMPLES = 2000
CONFIDENCE = 0.95


def deviation_stats(reference_mm: np.ndarray, candidate_mm: np.ndarray) -> dict:
    """Per-joint Euclidean distance between two sets of clips [N, T, 17, 3] in mm: its mean,
    quantiles and largest value, per joint, and per clip (the clip's largest joint distance)."""
    distance = joint_errors(candidate_mm, reference_mm)                   # [N, T, 17]
    per_clip_max = distance.max(axis=(1, 2))
    return {
        "mean_mm": float(distance.mean()),
        **{key: float(np.percentile(distance, q)) for key, q in QUANTILES.items()},
        "max_mm": float(distance.max()),
        "clips_off": int((per_clip_max > OFF_MM).sum()),
        "per_joint_mm": dict(zip(JOINT_NAMES, distance.mean(axis=(0, 1)).tolist())),
        "per_joint_max_mm": dict(zip(JOINT_NAMES, distance.max(axis=(0, 1)).tolist())),
        "per_clip_max_mm": per_clip_max.tolist(),
    }


def clip_errors(predicted_mm: np.ndarray, true_mm: np.ndarray) -> dict[str, np.ndarray]:
    """The task metric per clip: MPJPE and P-MPJPE [N], and the per-joint error [N, 17]."""
    errors = joint_errors(predicted_mm, true_mm)                          # [N, T, 17]
    return {"mpjpe": errors.mean(axis=(1, 2)), "p_mpjpe": p_mpjpe(predicted_mm, true_mm).mean(axis=1),
            "per_joint": errors.mean(axis=1)}


def balanced_mean(values: np.ndarray, strata: np.ndarray) -> float:
    """The mean over strata of each stratum's mean (the paper's action-balanced mean)."""
    return float(np.mean([values[strata == s].mean() for s in np.unique(strata)]))


def paired_bootstrap(differences: np.ndarray, sequences: np.ndarray, strata: np.ndarray,
                     resamples: int = RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the action-balanced mean of per-clip paired differences, resampling
    whole sequences with replacement within each stratum (action).

    Sequences, not clips, are the unit: the clips of one sequence share the performer, the motion
    and the camera, so their differences are correlated, and resampling clips would make the
    interval too narrow. Resampling within each action keeps the action balance of the estimate.
    """
    differences, sequences, strata = np.asarray(differences, np.float64), np.asarray(sequences), np.asarray(strata)
    if not len(differences) == len(sequences) == len(strata) or len(differences) == 0:
        raise InputError(f"{len(differences)} differences, {len(sequences)} sequence ids and {len(strata)} "
                         "strata: one of each per clip, at least one clip")
    rng = np.random.default_rng(seed)
    stratum_means = []
    for stratum in np.unique(strata):
        members = strata == stratum
        ids, index = np.unique(sequences[members], return_inverse=True)
        sums = np.bincount(index, weights=differences[members], minlength=len(ids))
        counts = np.bincount(index, minlength=len(ids)).astype(np.float64)
        draws = rng.integers(0, len(ids), size=(resamples, len(ids)))
        stratum_means.append(sums[draws].sum(axis=1) / counts[draws].sum(axis=1))
    means = np.mean(stratum_means, axis=0)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)
