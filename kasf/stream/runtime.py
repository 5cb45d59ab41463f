"""Streaming 2D-to-3D lifting for capture apps: per-frame keypoints of any number of tracked
people in, each person's 3D pose out, with every track's window batched into one engine call.

Each track keeps a sliding window of the engine's n_frames (27) frames:

- "causal" mode lifts the newest frame of the window: no delay.
- "centred" mode lifts the window's middle frame (n_frames // 2 = 13 frames of delay), the way the
  model was trained and evaluated: the pose of a track's frame f comes back when its frame f + 13
  arrives, and closing the track flushes the frames still pending.

Padding: a window reaching before a track's first frame repeats that first frame (the start of
every track), one reaching past its last frame repeats the last frame (flushing at close).

Missing joints (confidence 0; their coordinates may be NaN) keep confidence 0, so the model sees
them as missing, and get finite coordinates: the joint's last position seen in the track, or the
frame's root (pelvis) when the joint was never seen, or the mean of the frame's seen joints when
the root is missing too, or that point of the track's previous frame when nothing is seen (the
screen centre before anything is).

A track opens on its first frame and ends with close() (or, with close_after=N, after N frames
without keypoints for it). Its id cannot be used again: keypoints for a closed track are an
InputError, as a tracker that reuses ids would otherwise join two people into one window.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Hashable, Mapping, Sequence

import numpy as np

from ..engines.base import Engine
from ..errors import InputError, KasfError
from ..model.normalization import normalize_screen
from ..model.skeleton import JOINT_NAMES, NUM_JOINTS, ROOT

MODES = ("causal", "centred")


@dataclass(frozen=True)
class PoseResult:
    """One track's 3D pose for one of its frames: root-relative, in the model's normalised
    screen units (kasf.normalization.to_millimetres turns them into mm)."""

    track_id: Hashable
    frame: int          # the runtime frame (count of process() calls before it) that brought the keypoints
    track_frame: int    # the same frame counted within its track, from 0
    pose: np.ndarray    # [17, 3] float32


class LatencyLog:
    """Seconds spent per processed frame: in the engine call and in all of process()."""

    def __init__(self, capacity: int = 100_000):
        self.engine: deque[float] = deque(maxlen=capacity)
        self.total: deque[float] = deque(maxlen=capacity)

    def record(self, engine_s: float | None, total_s: float) -> None:
        """engine_s: None for a frame that needed no engine call (centred mode's first frames)."""
        if engine_s is not None:
            self.engine.append(engine_s)
        self.total.append(total_s)

    def summary(self) -> dict[str, float]:
        """p50 / p90 / p99 of engine and total latency in ms over the recorded frames."""
        out: dict[str, float] = {"frames": len(self.total)}
        for name, values in (("engine", self.engine), ("total", self.total)):
            ms = 1e3 * np.asarray(values if values else [np.nan])
            for q in (50, 90, 99):
                out[f"{name}_p{q}_ms"] = float(np.percentile(ms, q))
        return out


class _Track:
    """A person's last n_frames filled, normalised frames and what missing joints fall back to."""

    def __init__(self, n_frames: int):
        self.frames: deque[np.ndarray] = deque(maxlen=n_frames)
        self.runtime_frames: deque[int] = deque(maxlen=n_frames)
        self.count = 0                                   # frames pushed so far
        self.emitted = 0                                 # frames whose pose has been returned
        self.last_seen = np.zeros((NUM_JOINTS, 2), np.float32)
        self.seen = np.zeros(NUM_JOINTS, bool)
        self.anchor = np.zeros(2, np.float32)            # where never-seen joints go
        self.last_push = -1

    def push(self, keypoints: np.ndarray, runtime_frame: int) -> None:
        visible = keypoints[:, 2] > 0
        filled = keypoints.copy()
        if visible[ROOT]:
            self.anchor = keypoints[ROOT, :2].copy()
        elif visible.any():
            self.anchor = keypoints[visible, :2].mean(axis=0)
        self.last_seen[visible] = keypoints[visible, :2]
        self.seen |= visible
        missing = ~visible
        filled[missing, :2] = np.where(self.seen[missing, None], self.last_seen[missing], self.anchor)
        filled[missing, 2] = 0.0
        self.frames.append(filled)
        self.runtime_frames.append(runtime_frame)
        self.count += 1
        self.last_push = runtime_frame

    def window(self, frame: int, position: int) -> np.ndarray:
        """The n_frames window with track frame `frame` at index `position`, padded by repeating
        the first and last frames; it must lie within the frames kept."""
        n_frames = self.frames.maxlen
        first_kept = self.count - len(self.frames)
        wanted = np.clip(np.arange(frame - position, frame - position + n_frames), 0, self.count - 1)
        return np.stack([self.frames[i - first_kept] for i in wanted])

    def runtime_frame(self, frame: int) -> int:
        return self.runtime_frames[frame - (self.count - len(self.frames))]


class StreamRuntime:
    """Lifts per-frame 2D keypoints of tracked people to 3D poses with any kasf Engine.

    image_size=(width, height): keypoints come in pixels of that image and are normalised the
    way the model was trained (kasf.normalization); normalized=True: they already are.
    """

    def __init__(self, engine: Engine, mode: str = "causal", image_size: Sequence[float] | None = None,
                 normalized: bool = False, close_after: int | None = None):
        if mode not in MODES:
            raise KasfError(f"unknown mode {mode!r}: choose {' or '.join(MODES)}")
        if (image_size is None) == (not normalized):
            raise KasfError("say what the keypoints are: image_size=(width, height) for pixels, or "
                            "normalized=True for keypoints already in normalised screen units (not both)")
        if image_size is not None and (len(image_size) != 2 or min(image_size) <= 0):
            raise KasfError(f"image_size must be (width, height) in pixels, both positive, got {image_size}")
        if close_after is not None and close_after < 1:
            raise KasfError(f"close_after must be a positive number of frames, got {close_after}")
        self.engine, self.mode, self.close_after = engine, mode, close_after
        self.image_size = None if image_size is None else tuple(float(v) for v in image_size)
        self.n_frames = engine.n_frames
        self.position = self.n_frames - 1 if mode == "causal" else self.n_frames // 2
        self.delay = self.n_frames - 1 - self.position
        self.frame = 0
        self.latency = LatencyLog()
        self._tracks: dict[Hashable, _Track] = {}
        self._closed: dict[Hashable, int] = {}       # track id -> runtime frame it was closed at

    @property
    def tracks(self) -> list[Hashable]:
        """Ids of the open tracks."""
        return list(self._tracks)

    def process(self, keypoints: Mapping[Hashable, np.ndarray]) -> list[PoseResult]:
        """One frame: {track id: keypoints [17, 3] (x, y, confidence in [0, 1])} for the people seen
        in it. Returns the poses that became ready: first the pending frames of tracks close_after
        closed (centred mode), then one per track given, in the order given: its newest frame in
        causal mode, its frame `delay` frames back in centred mode (none while the track is younger).
        All their windows go through one engine call (several, of the engine's max_batch, when more)."""
        start = time.perf_counter()
        if not isinstance(keypoints, Mapping):
            raise InputError(f"frame {self.frame}: give keypoints as {{track id: array [17, 3]}}, "
                             f"got {type(keypoints).__name__}")
        checked = {track_id: self._check(track_id, values) for track_id, values in keypoints.items()}
        requests = self._close_idle(set(checked))
        for track_id, values in checked.items():
            track = self._tracks.setdefault(track_id, _Track(self.n_frames))
            track.push(values, self.frame)
            ready = track.count - 1 - self.delay
            if ready >= 0:
                requests.append((track_id, track, ready))
                track.emitted = ready + 1
        results, engine_s = self._lift(requests)
        self.frame += 1
        self.latency.record(engine_s, time.perf_counter() - start)
        return results

    def close(self, track_id: Hashable) -> list[PoseResult]:
        """End a track; in centred mode returns the poses of its frames still pending (padded at the end)."""
        if track_id not in self._tracks:
            state = "was already closed" if track_id in self._closed else "was never opened"
            raise KasfError(f"cannot close track {track_id!r}: it {state}")
        return self._lift(self._end(track_id))[0]

    def close_all(self) -> list[PoseResult]:
        """End every open track (at the end of a stream), flushing their pending poses in one engine call."""
        requests = [request for track_id in list(self._tracks) for request in self._end(track_id)]
        return self._lift(requests)[0]

    def _end(self, track_id: Hashable) -> list[tuple[Hashable, _Track, int]]:
        track = self._tracks.pop(track_id)
        self._closed[track_id] = self.frame
        return [(track_id, track, frame) for frame in range(track.emitted, track.count)]

    def _close_idle(self, pushed: set) -> list[tuple[Hashable, _Track, int]]:
        if self.close_after is None:
            return []
        idle = [track_id for track_id, track in self._tracks.items()
                if track_id not in pushed and self.frame - track.last_push >= self.close_after]
        return [request for track_id in idle for request in self._end(track_id)]

    def _lift(self, requests: list[tuple[Hashable, _Track, int]]) -> tuple[list[PoseResult], float | None]:
        if not requests:
            return [], None
        windows = np.stack([track.window(frame, self.position) for _, track, frame in requests])
        chunk = self.engine.max_batch or len(windows)
        start = time.perf_counter()
        poses = np.concatenate([self.engine.infer(windows[i:i + chunk])[:, self.position]
                                for i in range(0, len(windows), chunk)])
        engine_s = time.perf_counter() - start
        results = [PoseResult(track_id, track.runtime_frame(frame), frame, pose)
                   for (track_id, track, frame), pose in zip(requests, poses)]
        return results, engine_s

    def _check(self, track_id: Hashable, keypoints) -> np.ndarray:
        """Keypoints as a float32 [17, 3] array in normalised units, or an InputError naming the track."""
        where = f"track {track_id!r} at frame {self.frame}"
        if track_id in self._closed:
            raise InputError(f"{where}: the track was closed at frame {self._closed[track_id]}; "
                             "a closed track cannot be reopened, give the person a new track id")
        try:
            keypoints = np.asarray(keypoints)
        except ValueError as err:
            raise InputError(f"{where}: keypoints are not an array ({err})") from None
        if keypoints.dtype == bool or not np.issubdtype(keypoints.dtype, np.number) \
                or np.issubdtype(keypoints.dtype, np.complexfloating):
            raise InputError(f"{where}: keypoints must be real numbers, got dtype {keypoints.dtype}")
        if keypoints.shape != (NUM_JOINTS, 3):
            raise InputError(f"{where}: keypoints must have shape [{NUM_JOINTS}, 3] (Human3.6M joints; x, y, "
                             f"confidence), got {list(keypoints.shape)}; convert COCO-17 with "
                             "kasf.skeleton.coco_to_h36m")
        keypoints = keypoints.astype(np.float32)
        xy, confidence = keypoints[:, :2], keypoints[:, 2]
        problems = [
            (np.isinf(xy).any(axis=1), "has an infinite coordinate"),
            (np.isnan(confidence), "has a NaN confidence"),
            ((confidence < 0) | (confidence > 1), "has a confidence outside [0, 1]"),
            (np.isnan(xy).any(axis=1) & (confidence > 0), "has NaN coordinates but confidence above 0 "
                                                          "(mark a missing joint with confidence 0)"),
        ]
        for bad, problem in problems:
            if bad.any():
                joint = int(np.flatnonzero(bad)[0])
                raise InputError(f"{where}: joint {joint} ({JOINT_NAMES[joint]}) {problem}: "
                                 f"{keypoints[joint].tolist()}")
        if self.image_size is not None:
            keypoints = normalize_screen(keypoints, *self.image_size)
        return keypoints
