"""Engine windows: what the streaming runtime sends through the engine, how a batch of them
becomes poses, and the worker thread that lifts them beside a capture app's frame loop.

A Window is copied out of its track when it falls due, with the frames its poses belong to, so
lifting it later (on the worker) gives exactly what lifting it at once would.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Hashable

import numpy as np

from ..engines.base import Engine
from ..errors import KasfError


@dataclass(frozen=True)
class PoseResult:
    """One track's 3D pose for one of its frames: root-relative, in the model's normalised
    screen units (kasf.normalization.to_millimetres turns them into mm)."""

    track_id: Hashable
    frame: int          # the runtime frame (count of process() calls before it) that brought the keypoints
    track_frame: int    # the same frame counted within its track, from 0
    pose: np.ndarray    # [17, 3] float32


class Blend:
    """A track's running sums of the poses its windows gave for frames not yet returned, so that a
    returned pose is the mean of every window that contained its frame (equal weights)."""

    def __init__(self):
        self._sums: dict[int, list] = {}             # track frame -> [sum of poses, windows]

    def add(self, track_frame: int, pose: np.ndarray) -> None:
        entry = self._sums.setdefault(track_frame, [np.zeros_like(pose), 0])
        entry[0] += pose
        entry[1] += 1

    def take(self, track_frame: int, pose: np.ndarray) -> np.ndarray:
        """The frame's mean with this last window's pose; the frame leaves the sums."""
        self.add(track_frame, pose)
        total, count = self._sums.pop(track_frame)
        return total / np.float32(count)


@dataclass(frozen=True)
class Window:
    """A track's n_frames window and the poses it returns: (runtime frame, track frame, window
    position) each; `due` is the perf_counter time it fell due. With blending, `blend` is the
    track's sums and `contributes` the (track frame, position) of the later frames it also holds."""

    track_id: Hashable
    keypoints: np.ndarray                          # [n_frames, 17, 3]
    returns: tuple[tuple[int, int, int], ...]
    due: float
    blend: Blend | None = None
    contributes: tuple[tuple[int, int], ...] = ()


class LatencyLog:
    """Seconds per processed frame (all of process()), per engine call, and per window from falling
    due to its poses being ready."""

    def __init__(self, capacity: int = 100_000):
        self.engine: deque[float] = deque(maxlen=capacity)
        self.total: deque[float] = deque(maxlen=capacity)
        self.window: deque[float] = deque(maxlen=capacity)

    def summary(self) -> dict[str, float]:
        """p50 / p90 / p99 of engine, total and window latency in ms over what was recorded."""
        out: dict[str, float] = {"frames": len(self.total)}
        for name, values in (("engine", self.engine), ("total", self.total), ("window", self.window)):
            ms = 1e3 * np.asarray(values if values else [np.nan])
            for q in (50, 90, 99):
                out[f"{name}_p{q}_ms"] = float(np.percentile(ms, q))
        return out


def lift(engine: Engine, windows: list[Window], latency: LatencyLog) -> list[PoseResult]:
    """All the windows' poses from one engine call (several, of the engine's max_batch, when more),
    in the windows' order (a track's windows must come in the order they fell due, for blending)."""
    if not windows:
        return []
    keypoints = np.stack([window.keypoints for window in windows])
    chunk = engine.max_batch or len(keypoints)
    start = time.perf_counter()
    poses = np.concatenate([engine.infer(keypoints[i:i + chunk]) for i in range(0, len(keypoints), chunk)])
    ready = time.perf_counter()
    latency.engine.append(ready - start)
    latency.window.extend(ready - window.due for window in windows)
    results = []
    for window, pose in zip(windows, poses):
        if window.blend is None:
            results += [PoseResult(window.track_id, frame, track_frame, pose[position])
                        for frame, track_frame, position in window.returns]
            continue
        for track_frame, position in window.contributes:
            window.blend.add(track_frame, pose[position])
        results += [PoseResult(window.track_id, frame, track_frame, window.blend.take(track_frame, pose[position]))
                    for frame, track_frame, position in window.returns]
    return results


class EngineWorker:
    """Lifts submitted windows on its own thread, everything queued since its last call in one
    batch, so the frame loop never waits for the engine and a slow call is followed by a larger
    one. Poses come back, in submission order, from take() and drain(). An engine failure stops
    the worker and is raised, as a KasfError naming it, from the next submit, take or drain."""

    def __init__(self, engine: Engine, latency: LatencyLog):
        self._engine, self._latency = engine, latency
        self._pending: list[Window] = []
        self._ready: list[PoseResult] = []
        self._busy = self._stopping = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="kasf-engine-worker", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Windows submitted and not yet lifted."""
        with self._changed:
            return len(self._pending) + (1 if self._busy else 0)

    def submit(self, windows: list[Window]) -> None:
        with self._changed:
            self._raise_failure()
            if self._stopping:
                raise KasfError("the runtime was stopped: open a new StreamRuntime to lift more frames")
            self._pending += windows
            self._changed.notify_all()

    def take(self) -> list[PoseResult]:
        """The poses lifted since the last take, without waiting."""
        with self._changed:
            self._raise_failure()
            ready, self._ready = self._ready, []
            return ready

    def drain(self) -> list[PoseResult]:
        """Wait until every submitted window is lifted; their poses."""
        with self._changed:
            self._changed.wait_for(lambda: self._error is not None or not (self._pending or self._busy))
        return self.take()

    def stop(self) -> None:
        """Lift what was submitted, then end the thread (its poses stay for take)."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise KasfError(f"the engine worker failed and stopped: {self._error}") from self._error

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending or self._stopping)
                if not self._pending:
                    return
                batch, self._pending, self._busy = self._pending, [], True
            try:
                results = lift(self._engine, batch, self._latency)
            except Exception as err:  # noqa: BLE001 - handed to the caller's thread, which raises it
                with self._changed:
                    self._error, self._busy = err, False
                    self._changed.notify_all()
                return
            with self._changed:
                self._ready += results
                self._busy = False
                self._changed.notify_all()
