"""Parity reports as people read them: one summary table for any number of engines, a per-joint
table, and a per-joint plot of deviation, floor and task-metric difference."""

from __future__ import annotations

from pathlib import Path

from ..files import atomic_write
from ..keypoints.skeleton import JOINT_NAMES, ROOT
from ..table import render_table
from .parity import format_interval

SUMMARY_COLUMNS = ("engine", "precision", "clips", "deviation mean", "p99", "max", "floor mean", "floor p99",
                   "floor max", "dMPJPE", "95% interval", "dP-MPJPE", "budget", "verdict")


def verdict(report: dict) -> str:
    """PASS, or FAIL with the clause(s) that decided it."""
    if report["passed"]:
        return "PASS"
    return "FAIL: " + ", ".join(clause.replace("_", " ") for clause in report["decided_by"])


def summary_row(name: str, report: dict) -> list:
    """One engine's row of SUMMARY_COLUMNS (mm throughout)."""
    deviation, envelope, task = report["deviation"], report["floor"]["envelope"], report["task_metric"]
    return [name, report["precision"], report["clips"], deviation["mean_mm"], deviation["p99_mm"], deviation["max_mm"],
            envelope["mean_mm"], envelope["p99_mm"], envelope["max_mm"], task["mpjpe"]["difference_mm"],
            format_interval(task["mpjpe"]["interval_mm"]), task["p_mpjpe"]["difference_mm"], report["budget_mm"],
            verdict(report)]


def format_parity(reports: list[dict], title: str = "parity against PyTorch FP32 (mm)") -> str:
    """The summary table and, under it, each engine's explanation of its verdict."""
    rows = [summary_row(r.get("engine") or r["backend"], r) for r in reports]
    lines = [render_table(list(SUMMARY_COLUMNS), rows, digits=4, title=title)]
    lines += [f"{r.get('engine') or r['backend']}: {r['explanation']}" for r in reports]
    return "\n".join(lines)


def format_per_joint(report: dict) -> str:
    """Per joint: the engine's mean and largest deviation, the floor's, and the MPJPE difference."""
    deviation, floor = report["deviation"], report["floor"]["envelope"]
    difference = report["task_metric"]["per_joint_mpjpe_difference_mm"]
    rows = [(name, deviation["per_joint_mm"][name], floor["per_joint_mm"][name], deviation["per_joint_max_mm"][name],
             difference[name]) for name in JOINT_NAMES]
    return render_table(["joint", "deviation mean", "floor mean", "deviation max", "dMPJPE"], rows, digits=4,
                        title="per joint (mm)")


def plot_per_joint(reports: dict[str, dict], path: str | Path) -> Path:
    """Per joint, for each engine: its mean deviation with the floor of its precision outlined
    (log scale), and its MPJPE difference against the reference with the budget marked. The root
    is left out: poses are root-relative, so it never deviates."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    joints = [name for index, name in enumerate(JOINT_NAMES) if index != ROOT]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5.5), sharey=True)
    rows = np.arange(len(joints))
    height = 0.8 / max(1, len(reports))
    for i, (name, report) in enumerate(reports.items()):
        offset = rows - 0.4 + (i + 0.5) * height
        deviation = [report["deviation"]["per_joint_mm"][j] for j in joints]
        floor = [report["floor"]["envelope"]["per_joint_mm"][j] for j in joints]
        difference = [report["task_metric"]["per_joint_mpjpe_difference_mm"][j] for j in joints]
        bars = left.barh(offset, deviation, height, alpha=0.75, label=f"{name} ({verdict(report)})")
        colour = bars.patches[0].get_facecolor()
        left.barh(offset, floor, height, fill=False, edgecolor=colour[:3], linewidth=1.5, linestyle="--",
                  label=f"{name}: the reference's floor at {report['precision']} rounding")
        right.barh(offset, difference, height, color=colour)
        right.axvline(report["budget_mm"], color=colour[:3], linestyle=":", linewidth=1)
        right.axvline(-report["budget_mm"], color=colour[:3], linestyle=":", linewidth=1)
    left.set_xscale("log")
    left.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())   # decades only: minor labels collide
    left.set_yticks(rows, joints)
    left.invert_yaxis()
    left.set_xlabel("mean deviation from PyTorch FP32 (mm, log); dashed outline: the floor")
    right.axvline(0, color="black", linewidth=0.8)
    right.set_xlabel("MPJPE difference, engine minus reference (mm); dotted: budget")
    for axes in (left, right):
        axes.grid(True, axis="x", alpha=0.3)
    handles, labels = left.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    figure.suptitle("parity per joint on the motion-capture test clips")
    figure.tight_layout(rect=(0, 0.04 + 0.03 * len(reports), 1, 1))

    def save(tmp: str) -> None:
        figure.savefig(tmp, format="png", dpi=110)

    try:
        return atomic_write(path, save)
    finally:
        plt.close(figure)
