"""The demo's figures: error per joint, predicted against true 3D skeletons, and an animated clip,
each written atomically as the report's images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..files import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))
    plt.close(figure)


def plot_per_joint(evaluation: dict, path: Path) -> None:
    """Test MPJPE of each joint, a horizontal bar each."""
    from ..keypoints.skeleton import JOINT_NAMES

    plt = _pyplot()
    values = [evaluation["per_joint"][name] for name in JOINT_NAMES]
    figure, axes = plt.subplots(figsize=(7, 5))
    bars = axes.barh(JOINT_NAMES, values, color=["#c0392b" if "right" in n else "#2471a3" if "left" in n else "#7f8c8d"
                                                 for n in JOINT_NAMES])
    axes.bar_label(bars, fmt="%.0f", fontsize=7, padding=2)
    axes.invert_yaxis()
    axes.axvline(evaluation["mpjpe"], color="black", linestyle="--", linewidth=1)
    axes.set_xlim(0, 1.12 * max(values))
    axes.set_xlabel("MPJPE on the test motions (mm)")
    axes.set_title(f"error per joint, mean {evaluation['mpjpe']:.1f} mm (dashed)\nred: right side, blue: left side",
                   fontsize=10)
    figure.tight_layout()
    _save_figure(figure, path)


def _upright(pose_mm: np.ndarray) -> np.ndarray:
    """Camera coordinates (x right, y down, z away) -> plot axes (x, depth, up), in metres."""
    return np.stack([pose_mm[..., 0], pose_mm[..., 2], -pose_mm[..., 1]], axis=-1) / 1000.0


def _draw_pose(axes, pose_mm: np.ndarray, color: str, label: str | None = None) -> list:
    from ..keypoints.skeleton import PARENTS

    pose = _upright(pose_mm)
    lines = []
    for joint, parent in enumerate(PARENTS):
        if parent < 0:
            continue
        (line,) = axes.plot(*zip(pose[parent], pose[joint]), color=color, linewidth=2,
                            label=label if not lines else None)
        lines.append(line)
    return lines


def _frame_axes(axes, poses_mm: np.ndarray, title: str) -> None:
    points = _upright(poses_mm).reshape(-1, 3)
    centre, radius = (points.max(0) + points.min(0)) / 2, max(0.5, float((points.max(0) - points.min(0)).max()) / 2)
    for setter, middle in zip((axes.set_xlim, axes.set_ylim, axes.set_zlim), centre):
        setter(middle - radius, middle + radius)
    axes.set_box_aspect((1, 1, 1))
    axes.view_init(elev=12, azim=-70)
    axes.set_xlabel("x (m)", fontsize=7)
    axes.set_ylabel("depth (m)", fontsize=7)
    axes.set_zlabel("up (m)", fontsize=7)
    axes.tick_params(labelsize=6)
    axes.set_title(title, fontsize=9)


def _clip_choice(data, count: int) -> list[int]:
    """One clip per test motion (its middle clip), up to count."""
    chosen = []
    for action in dict.fromkeys(data["action"].tolist()):
        indices = np.flatnonzero(data["action"] == action)
        chosen.append(int(indices[len(indices) // 2]))
    return chosen[:count]


def plot_skeletons(data, path: Path, count: int) -> None:
    """Predicted (red) against true (black) 3D poses at the middle frame of a few test clips."""
    plt = _pyplot()
    chosen = _clip_choice(data, count)
    figure = plt.figure(figsize=(4 * len(chosen), 4.4))
    for column, index in enumerate(chosen):
        predicted, true = data["predicted_mm"][index], data["true_mm"][index]
        frame = len(true) // 2
        error = float(np.linalg.norm(predicted - true, axis=-1).mean())
        axes = figure.add_subplot(1, len(chosen), column + 1, projection="3d")
        _draw_pose(axes, true[frame], "black", "true")
        _draw_pose(axes, predicted[frame], "#d62728", "predicted")
        _frame_axes(axes, np.stack([true[frame], predicted[frame]]),
                    f"{data['action'][index]} ({data['source'][index]})\nclip MPJPE {error:.0f} mm")
        if column == 0:
            axes.legend(loc="upper left", fontsize=7)
    figure.suptitle("test clips: predicted (red) vs motion capture (black), middle frame")
    figure.tight_layout(rect=(0, 0, 1, 0.93))
    _save_figure(figure, path)


def _sequence_frames(data, frames: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Consecutive test clips of the longest test sequence (test clips do not overlap), joined: up to
    `frames` frames."""
    names, counts = np.unique(data["source"], return_counts=True)
    name = names[np.argmax(counts)]
    indices = np.flatnonzero(data["source"] == name)
    predicted = np.concatenate(data["predicted_mm"][indices])[:frames]
    true = np.concatenate(data["true_mm"][indices])[:frames]
    return predicted, true, str(name)


def animate_clip(data, path: Path, frames: int, fps: float = 15.0) -> None:
    """An animated GIF of one test sequence, predicted against true (matplotlib.animation, Pillow)."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    plt = _pyplot()
    predicted, true, name = _sequence_frames(data, frames)
    figure = plt.figure(figsize=(4.5, 4.5))
    axes = figure.add_subplot(projection="3d")

    def draw(frame: int) -> list:
        axes.cla()
        _draw_pose(axes, true[frame], "black", "true")
        lines = _draw_pose(axes, predicted[frame], "#d62728", "predicted")
        error = float(np.linalg.norm(predicted[frame] - true[frame], axis=-1).mean())
        _frame_axes(axes, np.stack([true, predicted]), f"{name}, frame {frame + 1}/{len(true)}: {error:.0f} mm")
        axes.legend(loc="upper left", fontsize=7)
        return lines

    animation = FuncAnimation(figure, draw, frames=len(true), blit=False)

    def save(tmp: str) -> None:
        staged = tmp + ".gif"        # Pillow picks the format from the suffix
        try:
            animation.save(staged, writer=PillowWriter(fps=fps), dpi=80)
            os.replace(staged, tmp)
        finally:
            Path(staged).unlink(missing_ok=True)

    atomic_write(path, save)
    plt.close(figure)
