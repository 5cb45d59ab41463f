"""Parity in the user's units: how far an engine's poses are from the PyTorch FP32 reference,
in millimetres per joint, against named budgets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .skeleton import JOINT_NAMES


@dataclass(frozen=True)
class Budget:
    mean_mm: float
    max_mm: float | None = None


BUDGETS = {"fp32": Budget(mean_mm=0.01), "fp16": Budget(mean_mm=0.5, max_mm=5.0)}


def deviation_mm(reference_mm: np.ndarray, candidate_mm: np.ndarray) -> dict:
    """Per-joint Euclidean deviation statistics between two [..., 17, 3] arrays in mm."""
    distance = np.linalg.norm(np.asarray(candidate_mm, np.float64) - np.asarray(reference_mm, np.float64), axis=-1)
    per_joint = distance.reshape(-1, distance.shape[-1]).mean(axis=0)
    return {
        "mean_mm": float(distance.mean()),
        "p99_mm": float(np.percentile(distance, 99)),
        "max_mm": float(distance.max()),
        "per_joint_mm": dict(zip(JOINT_NAMES, per_joint.tolist())),
    }


def within(stats: dict, budget: Budget) -> bool:
    return stats["mean_mm"] <= budget.mean_mm and (budget.max_mm is None or stats["max_mm"] <= budget.max_mm)


def engine_predictions(engine, keypoints: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Run an engine over [M, T, 17, 3] keypoints in batches."""
    return np.concatenate([engine.infer(keypoints[i:i + batch_size]) for i in range(0, len(keypoints), batch_size)])


def compare_on_clips(model, engine, clips, batch_size: int = 32) -> dict:
    """The engine against the PyTorch FP32 reference on the same clips, in mm, with its budget."""
    from .evaluate import predict

    reference = clips.to_millimetres(predict(model, clips, batch_size))
    candidate = clips.to_millimetres(engine_predictions(engine, clips.keypoints, batch_size))
    stats = deviation_mm(reference, candidate)
    budget = BUDGETS[engine.precision]
    return {"backend": engine.backend, "precision": engine.precision, "clips": len(clips), **stats,
            "budget_mean_mm": budget.mean_mm, "budget_max_mm": budget.max_mm, "passed": within(stats, budget)}


def format_parity(reports: list[dict], title: str = "parity against PyTorch FP32 (mm per joint)") -> str:
    from .table import render_table

    rows = [(r["backend"], r["precision"], r["clips"], r["mean_mm"], r["p99_mm"], r["max_mm"],
             f"mean <= {r['budget_mean_mm']}" + (f", max <= {r['budget_max_mm']}" if r["budget_max_mm"] else ""),
             "PASS" if r["passed"] else "FAIL") for r in reports]
    return render_table(["backend", "precision", "clips", "mean", "p99", "max", "budget", "status"], rows,
                        digits=4, title=title)
