"""Evaluation: run a model over clips and report the paper's tables in millimetres."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data.clips import ClipSet
from .metrics import error_tables
from ..model.kasportsformer import predict_with_flip
from ..keypoints.skeleton import JOINT_NAMES
from ..table import render_table


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
        report = error_tables(clips.to_millimetres(predicted), clips.poses_mm, clips.action)
        report["unit"] = "mm"
    else:
        report = error_tables(predicted, clips.targets, clips.action)
        report["unit"] = "normalised"
    report["clips"] = len(clips)
    report["flip"] = flip
    return report


def format_report(report: dict, title: str = "") -> str:
    """The report as plain-text tables: overall, per action, per joint."""
    unit = report["unit"]
    summary = [(key, report[key]) for key in ("mpjpe", "p_mpjpe", "action_mean_mpjpe", "action_mean_p_mpjpe",
                                               "upper_body", "lower_body", "acceleration_error")
               if report.get(key) is not None]
    parts = [render_table(["metric", unit], [("clips", report["clips"]), *summary], title=title)]
    if len(report.get("per_action_mpjpe", {})) > 1:
        parts.append(render_table(["action", "MPJPE", "P-MPJPE"],
                                  [(a, v, report["per_action_p_mpjpe"][a]) for a, v in report["per_action_mpjpe"].items()]))
    if "per_joint" in report:
        parts.append(render_table(["joint", "MPJPE"], [(name, report["per_joint"][name]) for name in JOINT_NAMES]))
    return "\n\n".join(parts)
