"""How accurate the streaming runtime's poses are for each (lag, stride): the embedded motion
capture's test sequences streamed frame by frame through a StreamRuntime, one track per
sequence, every returned pose compared with the ground truth of its own frame.

Not cut clips: a streamed pose sits where the setting puts it in its window (lag to
lag + stride - 1 frames from the window's end), and neighbouring poses may come from different
windows, which the acceleration error (second differences over each sequence) shows as jitter at
window boundaries.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..data.clips import ClipSet, make_clips, sequence_bounds
from ..engines.base import Engine
from ..errors import KasfError
from ..table import render_table
from ..train.metrics import acceleration_error, mpjpe, p_mpjpe
from .runtime import StreamRuntime

# (lag, stride, blend): causal and centred, then the settings between (latency against work per
# pose), and blending where windows overlap.
DEFAULT_SETTINGS = ((0, 1), (13, 1), (0, 27), (0, 14), (7, 14), (4, 19), (7, 7), (10, 7), (13, 7), (3, 3),
                    (13, 1, True), (7, 14, True), (13, 7, True), (13, 3, True))


def setting_label(lag: int, stride: int, blend: bool = False) -> str:
    """'LAG:STRIDE', with ':blend' for blended settings; parse_setting reads it back."""
    return f"{lag}:{stride}" + (":blend" if blend else "")


def mocap_test_frames(sequences: int | None = None) -> ClipSet:
    """The motion capture's test split frame by frame (one-frame clips, in sequence order): all its
    sequences, or `sequences` of them spread evenly over the list (motions, cameras, lengths)."""
    from ..data.mocap import load_mocap_source
    from ..data.source import parse_split
    from ..data.splits import RESOLUTIONS

    frames = make_clips(parse_split(load_mocap_source(), "test", "mocap", evaluation=True), RESOLUTIONS["mocap"],
                        n_frames=1, stride=1)
    bounds = sequence_bounds(frames.source)
    if sequences is None or sequences >= len(bounds):
        return frames
    if sequences < 1:
        raise KasfError(f"stream at least one sequence, got {sequences}")
    chosen = np.linspace(0, len(bounds) - 1, sequences).round().astype(int)
    return frames.select(np.concatenate([np.arange(*bounds[i]) for i in chosen]))


def stream_sequences(engine: Engine, frames: ClipSet, lag: int, stride: int,
                     blend: bool = False) -> tuple[np.ndarray, int]:
    """Every frame's streamed pose [N, 17, 3] (normalised units), all sequences at once as tracks
    that end with their sequence, and the engine windows it took."""
    bounds = sequence_bounds(frames.source)
    keypoints = frames.keypoints[:, 0]
    runtime = StreamRuntime(engine, normalized=True, lag=lag, stride=stride, blend=blend)
    poses = np.full(keypoints.shape, np.nan, np.float32)
    longest = max(end - start for start, end in bounds)
    for frame in range(longest):
        live = {track: keypoints[start + frame] for track, (start, end) in enumerate(bounds) if start + frame < end}
        results = runtime.process(live)
        results += [r for track, (start, end) in enumerate(bounds) if start + frame == end - 1
                    for r in runtime.close(track)]
        for r in results:
            poses[bounds[r.track_id][0] + r.track_frame] = r.pose
    if np.isnan(poses).any():
        raise KasfError("the runtime did not return a pose for every frame")
    return poses, runtime.windows


def streamed_accuracy(engine: Engine, frames: ClipSet, lag: int, stride: int, blend: bool = False) -> dict:
    """MPJPE, P-MPJPE (mm, mean over frames) and acceleration error (mm/frame^2, mean over each
    sequence's frames) of the streamed poses; latency in frames; engine windows per pose."""
    poses, windows = stream_sequences(engine, frames, lag, stride, blend)
    predicted = frames.to_millimetres(poses[:, None])[:, 0]
    truth = frames.poses_mm[:, 0]
    acceleration = np.concatenate([acceleration_error(predicted[start:end], truth[start:end])
                                   for start, end in sequence_bounds(frames.source) if end - start >= 3])
    return {"lag": lag, "stride": stride, "blend": blend, "setting": setting_label(lag, stride, blend), "mpjpe_mm": float(mpjpe(predicted, truth).mean()),
            "p_mpjpe_mm": float(p_mpjpe(predicted, truth).mean()), "acceleration_mm": float(acceleration.mean()),
            "latency_frames_mean": lag + (stride - 1) / 2, "latency_frames_max": lag + stride - 1,
            "windows_per_pose": windows / len(frames), "frames": len(frames)}


def latency_accuracy(engine: Engine, settings: Sequence[tuple] = DEFAULT_SETTINGS,
                     frames: ClipSet | None = None) -> list[dict]:
    """One row per (lag, stride[, blend]), with MPJPE relative to centred stride 1 (unblended) where
    it is in the grid."""
    frames = mocap_test_frames() if frames is None else frames
    rows = [streamed_accuracy(engine, frames, *setting) for setting in settings]
    centred = next((r["mpjpe_mm"] for r in rows
                    if (r["lag"], r["stride"], r["blend"]) == (engine.n_frames // 2, 1, False)), None)
    for row in rows:
        row["mpjpe_vs_centred"] = None if centred is None else row["mpjpe_mm"] / centred - 1
    return rows


def format_latency_accuracy(rows: list[dict], title: str = "") -> str:
    headers = ["lag", "stride", "blend", "latency frames mean", "max", "windows/pose", "MPJPE mm", "vs centred",
               "P-MPJPE mm", "accel mm", "people @30fps"]
    lines = [[r["lag"], r["stride"], "yes" if r["blend"] else "no", r["latency_frames_mean"], r["latency_frames_max"], r["windows_per_pose"],
              r["mpjpe_mm"], None if r["mpjpe_vs_centred"] is None else f"{100 * r['mpjpe_vs_centred']:+.1f}%",
              r["p_mpjpe_mm"], r["acceleration_mm"], r.get("people")] for r in rows]
    return render_table(headers, lines, title=title)


def parse_setting(text: str) -> tuple[int, int, bool]:
    """'LAG:STRIDE' or 'LAG:STRIDE:blend' -> (lag, stride, blend)."""
    parts = text.split(":")
    try:
        if len(parts) in (2, 3) and parts[2:] in ([], ["blend"]):
            return int(parts[0]), int(parts[1]), len(parts) == 3
    except ValueError:
        pass
    raise KasfError(f"setting {text!r} is not LAG:STRIDE or LAG:STRIDE:blend with two integers, e.g. 7:14 "
                    "or 13:7:blend")


def plot_latency_accuracy(rows: list[dict], path, title: str = "") -> None:
    """Streamed MPJPE against mean latency in frames, one point per (lag, stride), labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import atomic_write

    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for blend, marker in ((False, "o"), (True, "x")):
        for stride in sorted({r["stride"] for r in rows if r["blend"] == blend}):
            mine = [r for r in rows if r["stride"] == stride and r["blend"] == blend]
            axes.scatter([r["latency_frames_mean"] for r in mine], [r["mpjpe_mm"] for r in mine], marker=marker,
                         label=f"stride {stride}" + (", blended" if blend else ""))
            for r in mine:
                axes.annotate(r["setting"], (r["latency_frames_mean"], r["mpjpe_mm"]), fontsize=7,
                              xytext=(3, 3), textcoords="offset points")
    axes.set_xlabel("mean pose latency (frames)")
    axes.set_ylabel("streamed MPJPE (mm)")
    axes.ticklabel_format(axis="y", useOffset=False)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7)
    axes.set_title(title or "latency against accuracy (lag:stride)", fontsize=9)
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=120, format="png"), suffix=".png")
    plt.close(figure)
