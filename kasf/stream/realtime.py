"""How many people the streaming runtime keeps up with in real time on this machine.

A recorded multi-person sequence (the embedded motion capture's test split, one person per test
sequence: a different motion or camera each, in pixels) is replayed at a camera's frame rate
through a StreamRuntime. Frames arrive every 1/fps seconds; a frame that arrives while the
runtime is still busy waits, and frames overtaken by a newer one before the runtime is free are
dropped, as a capture app that always lifts the newest frame would do.

Criterion: N people are sustainable when the p99 of the per-frame total latency (the time the
frame loop spends in process()) is within the frame budget (1/fps), the p99 of the window latency
(from a window falling due to its poses being ready) is within stride frame budgets, so the engine
finishes a track's window before the track's next one falls due, and at most 1% of the frames are
dropped. With the runtime's worker the frame loop does not wait for the engine, and the window
latency is what shows whether the engine keeps up.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ..engines.base import Engine
from ..errors import KasfError
from .runtime import StreamRuntime
from ..table import render_table

MAX_DROPPED_SHARE = 0.01
CRITERION = (f"p99 total latency <= 1/fps, p99 window latency <= stride/fps and at most {MAX_DROPPED_SHARE:.0%} "
             "of frames dropped")


def recorded_people(count: int, seed: int = 0) -> tuple[list[np.ndarray], tuple[float, float]]:
    """Pixel keypoints [frames, 17, 3] (confidence 1: ground-truth 2D) of `count` people and the
    image size (W, H). Person i replays test sequence i mod S; people sharing a sequence start
    at different frames of it."""
    from ..data.clips import sequence_bounds
    from ..data.mocap import load_mocap_source
    from ..data.source import parse_split
    from ..data.splits import RESOLUTIONS

    if count < 1:
        raise KasfError(f"the number of people must be at least 1, got {count}")
    frames = parse_split(load_mocap_source(seed=seed), "test", "mocap")
    confidence = np.ones(frames.joint_2d.shape[:2], np.float32) if frames.confidence is None else frames.confidence
    keypoints = np.concatenate([frames.joint_2d, confidence[..., None]], axis=-1).astype(np.float32)
    sequences = [keypoints[start:end] for start, end in sequence_bounds(frames.source)]
    people = []
    for person in range(count):
        sequence = sequences[person % len(sequences)]
        people.append(np.roll(sequence, -(person // len(sequences)) * 7 % len(sequence), axis=0))
    return people, RESOLUTIONS["mocap"]


def back_and_forth(sequence: np.ndarray, frame: int) -> np.ndarray:
    """Frame `frame` of the sequence played forwards, backwards, forwards... (no jump at the ends)."""
    if len(sequence) == 1:
        return sequence[0]
    period = 2 * (len(sequence) - 1)
    index = frame % period
    return sequence[index if index < len(sequence) else period - index]


def replay_people(engine: Engine, people: list[np.ndarray], image_size: tuple[float, float], fps: float,
                  seconds: float, **runtime) -> dict:
    """Play the people's keypoints at `fps` for `seconds` through a fresh StreamRuntime(**runtime):
    mode, lag, stride, worker, blend. Per-frame and window latency percentiles (ms), frames
    processed and dropped, whether it kept up, engine windows per returned pose, and each returned
    pose's latency from its keypoints' arrival to the frame loop getting it, in frames and ms (the
    poses the final close flushes left out)."""
    if fps <= 0 or seconds <= 0:
        raise KasfError(f"fps and seconds must be positive, got {fps} and {seconds}")
    with StreamRuntime(engine, image_size=image_size, **runtime) as stream:
        engine.warmup(batch=max(1, -(-len(people) // stream.stride)))
        result = _replay(stream, people, fps, seconds)
    return {"people": len(people), "fps": fps, "mode": stream.mode, "lag": stream.lag, "stride": stream.stride,
            "worker": bool(runtime.get("worker")), "blend": stream.blend, **result}


def _replay(runtime: StreamRuntime, people: list[np.ndarray], fps: float, seconds: float) -> dict:
    budget, frames = 1.0 / fps, max(1, round(seconds * fps))
    dropped, frame, start = 0, 0, time.perf_counter()
    camera_frames, waits = [], []     # per runtime frame: its camera frame; per returned pose: (frames, seconds)

    def received(results, frame: int) -> None:
        returned = time.perf_counter() - start
        waits.extend((frame - camera_frames[r.frame], returned - camera_frames[r.frame] * budget) for r in results)

    while frame < frames:
        wait = start + frame * budget - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        camera_frames.append(frame)
        received(runtime.process({person: back_and_forth(sequence, frame) for person, sequence in enumerate(people)}),
                 frame)
        newest = min(frames, int((time.perf_counter() - start) * fps))   # the newest frame arrived by now
        following = max(frame + 1, newest)
        dropped += following - frame - 1
        frame = following
    received(runtime.drain(), frames)
    summary = runtime.latency.summary()
    poses = len(waits) + len(runtime.close_all())
    keeps_up = (summary["total_p99_ms"] <= 1e3 * budget and summary["window_p99_ms"] <= 1e3 * budget * runtime.stride
                and dropped <= MAX_DROPPED_SHARE * frames)
    delay_frames, delay_s = np.asarray(waits or [(np.nan, np.nan)], dtype=np.float64).T
    return {"frames": frames, "processed": summary.pop("frames"), "dropped": dropped, **summary,
            "windows_per_pose": runtime.windows / poses if poses else float("nan"),
            "pose_latency_frames_mean": float(delay_frames.mean()), "pose_latency_frames_max": float(delay_frames.max()),
            "pose_latency_ms_mean": 1e3 * float(delay_s.mean()), "pose_latency_ms_max": 1e3 * float(delay_s.max()),
            "keeps_up": bool(keeps_up)}


def most_people(run: Callable[[int], dict], limit: int) -> tuple[int, list[dict]]:
    """The most people `run(n)` keeps up with, up to `limit`: doubling from 1, then bisecting
    between the last count that kept up and the first that did not. 0 when one person is too many."""
    trials: dict[int, dict] = {}

    def keeps_up(count: int) -> bool:
        trials[count] = run(count)
        return trials[count]["keeps_up"]

    good, bad, count = 0, None, 1
    while bad is None and good < limit:
        if keeps_up(count):
            good, count = count, min(2 * count, limit)
        else:
            bad = count
    while bad is not None and bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if keeps_up(middle) else (good, middle)
    return good, [trials[count] for count in sorted(trials)]


def format_replays(reports: list[dict], title: str = "") -> str:
    headers = ["people", "fps", "lag", "stride", "worker", "frames", "dropped", "engine p50", "engine p99",
               "total p50", "total p90", "total p99", "budget", "window p99", "windows/pose",
               "pose latency frames mean/max", "pose latency ms mean/max", "keeps up"]
    rows = [[r["people"], r["fps"], r["lag"], r["stride"], "yes" if r["worker"] else "no", r["frames"], r["dropped"],
             r["engine_p50_ms"], r["engine_p99_ms"], r["total_p50_ms"], r["total_p90_ms"], r["total_p99_ms"],
             1e3 / r["fps"], r["window_p99_ms"],
             r["windows_per_pose"], f"{r['pose_latency_frames_mean']:.1f} / {r['pose_latency_frames_max']:.0f}",
             f"{r['pose_latency_ms_mean']:.0f} / {r['pose_latency_ms_max']:.0f}", "yes" if r["keeps_up"] else "no"]
            for r in reports]
    return render_table(headers, rows, title=title)


def measure_people(engine: Engine, counts: list[int], fps: float, seconds: float, max_people: int | None = None,
                   **runtime) -> dict:
    """Replay each of `counts` people through StreamRuntime(**runtime); with max_people, also search
    for the most people sustainable up to it. The report `kasf realtime` prints and writes."""
    people, image_size = recorded_people(max([max_people or 0, *counts]))

    def run(count: int) -> dict:
        return replay_people(engine, people[:count], image_size, fps, seconds, **runtime)

    result = {"engine_metadata": engine.metadata(), "criterion": CRITERION, "runs": [run(count) for count in counts]}
    if max_people is not None:
        result["most_people"], result["search"] = most_people(run, max_people)
    return result
