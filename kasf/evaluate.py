"""Evaluation: run a model over clips and report the paper's tables in millimetres."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .data.clips import ClipSet
from .metrics import evaluate
from .model import predict_with_flip
from .skeleton import JOINT_NAMES


@torch.no_grad()
def predict(model: nn.Module, clips: ClipSet, batch_size: int = 64, flip: bool = False,
            device: str | torch.device = "cpu") -> np.ndarray:
    """Normalised 3D predictions [M, T, 17, 3] for every clip (eval mode, test-time flip optional)."""
    was_training = model.training
    model.eval()
    outputs = []
    for start in range(0, len(clips), batch_size):
        batch = torch.from_numpy(clips.keypoints[start:start + batch_size]).to(device)
        outputs.append((predict_with_flip(model, batch) if flip else model(batch)).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(outputs) if outputs else np.zeros_like(clips.targets)


def evaluate_clips(model: nn.Module, clips: ClipSet, flip: bool = False, batch_size: int = 64,
                   device: str | torch.device = "cpu") -> dict:
    """The paper's metrics for a model on clips: mm when the clips carry the 2.5D factor."""
    predicted = predict(model, clips, batch_size, flip, device)
    if clips.factor is not None and clips.poses_mm is not None:
        report = evaluate(clips.to_millimetres(predicted), clips.poses_mm, clips.action)
        report["unit"] = "mm"
    else:
        report = evaluate(predicted, clips.targets, clips.action)
        report["unit"] = "normalised"
    report["clips"] = len(clips)
    report["flip"] = flip
    return report


def format_report(report: dict, title: str = "") -> str:
    """The report as plain-text tables: overall, per action, per joint."""
    unit = report["unit"]
    lines = [title] if title else []
    lines.append(f"{'clips':<26}{report['clips']:>10}")
    for key in ("mpjpe", "p_mpjpe", "action_mean_mpjpe", "action_mean_p_mpjpe", "upper_body", "lower_body",
                "acceleration_error"):
        if report.get(key) is not None:
            lines.append(f"{key + ' (' + unit + ')':<26}{report[key]:>10.2f}")
    if "per_action_mpjpe" in report and len(report["per_action_mpjpe"]) > 1:
        lines.append(f"\n{'action':<26}{'MPJPE':>10}{'P-MPJPE':>10}")
        for action, value in report["per_action_mpjpe"].items():
            lines.append(f"{action:<26}{value:>10.2f}{report['per_action_p_mpjpe'][action]:>10.2f}")
    if "per_joint" in report:
        lines.append(f"\n{'joint':<26}{'MPJPE':>10}")
        lines.extend(f"{name:<26}{report['per_joint'][name]:>10.2f}" for name in JOINT_NAMES)
    return "\n".join(lines)
