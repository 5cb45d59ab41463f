"""Streaming 2D-to-3D lifting for capture apps: per-frame keypoints of any number of tracked
people in, each person's 3D pose out, with every track's window batched into one engine call.

Each track keeps a sliding window of the engine's n_frames (27) frames, and two settings say which
of a window's poses come back:

- lag: how many frames the newest pose a call returns lies behind the track's newest keypoints;
- stride: how many poses one engine window returns. Every `stride` frames of a track its window
  goes through the engine and the poses at window positions n-1-lag-stride+1 .. n-1-lag come back
  (lag + stride <= n_frames). A pose's latency is lag to lag + stride - 1 frames.

The named modes are presets of these: "causal" is lag 0, stride 1 (the newest frame, no delay),
"centred" lag n_frames // 2 = 13, stride 1 (the window's middle frame, as the model was trained
and evaluated). Tracks are staggered: a track's windows fall on the frames where
(track frame + 1 - lag + phase) is a multiple of stride, its phase taken from its own id alone
(track_phase: consecutive integer ids land far apart over the stride, and any stride ids
consecutive ids fill every phase once), so N tracks put about N / stride windows, not N, on each
frame, a few tracks spread their windows over the stride instead of bunching them on
neighbouring frames, and what a track gets never depends on the other tracks. A track's first window returns its frames from 0.
Closing a track flushes its pending poses, from windows past its end.

Blending (blend=True): a returned pose is the mean, with equal weights, of the poses every window
that held its frame gave for it, from the first such window up to the one returning it, so a
pose where windows meet draws on its neighbours' windows too. It costs no engine work; it changes
anything only where lag > 0 (with lag 0 the returning window is the first to hold the frame).

Without a worker each call lifts its own windows and returns their poses. With one
(worker=True), windows go to a thread that lifts all that queued up in one batch while the frame
loop goes on, and each call returns the poses finished since the last: the same poses, later,
and a capture app keeps its frame rate as long as the engine keeps up on average.

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

import math
import time
import zlib
from collections import deque
from typing import Hashable, Mapping, Sequence

import numpy as np

from ..engines.base import Engine
from ..errors import InputError, KasfError
from ..model.normalization import normalize_screen
from ..keypoints.layouts import h36m_keypoints
from ..keypoints.skeleton import JOINT_NAMES, NUM_JOINTS, ROOT
from .windows import Blend, EngineWorker, LatencyLog, PoseResult, Window, lift

MODES = ("causal", "centred")


def mode_lag(mode: str, n_frames: int) -> int:
    """The lag a named mode stands for (both return one pose per window)."""
    if mode not in MODES:
        raise KasfError(f"unknown mode {mode!r}: choose {' or '.join(MODES)}")
    return 0 if mode == "causal" else n_frames // 2


def check_lag_stride(lag: int, stride: int, n_frames: int) -> None:
    """Refuse settings no window can serve, naming the limit."""
    for name, value, least in (("lag", lag, 0), ("stride", stride, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise KasfError(f"{name} must be an integer of at least {least}, got {value!r}")
    if lag + stride > n_frames:
        raise KasfError(f"lag {lag} + stride {stride} = {lag + stride} is more than the engine's window of "
                        f"{n_frames} frames: the poses a window returns must lie in it (lag + stride <= {n_frames})")


def phase_step(stride: int) -> int:
    """The multiplier of integer ids in their phase: coprime to stride, so ids 0..stride-1 take every
    phase once, and of those the one that spreads the first 2 to 5 ids most evenly over the stride
    (the largest worst m * (smallest gap between the first m ids' phases); then the largest sum of
    them; then the smallest step)."""
    if stride == 1:
        return 1
    counts = range(2, min(stride, 5) + 1)

    def spread(step: int) -> tuple[int, int, int]:
        gaps = []
        for m in counts:
            phases = sorted(i * step % stride for i in range(m))
            gaps.append(m * min(b - a for a, b in zip(phases, phases[1:] + [phases[0] + stride])))
        return min(gaps), sum(gaps), -step

    return max((k for k in range(1, stride + 1) if math.gcd(k, stride) == 1), key=spread)


def track_phase(track_id: Hashable, stride: int) -> int:
    """Where a track's windows fall among the stride's frames: its integer id times phase_step,
    modulo stride (the C++ runtime's rule), or a stable hash of any other id; never the other tracks."""
    if isinstance(track_id, (int, np.integer)) and not isinstance(track_id, bool):
        return int(track_id) % stride * phase_step(stride) % stride
    return zlib.crc32(repr(track_id).encode("utf-8")) % stride


class _Track:
    """A person's last n_frames filled, normalised frames and what missing joints fall back to."""

    def __init__(self, n_frames: int, phase: int, blend: Blend | None):
        self.phase, self.blend = phase, blend
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

    def window(self, newest: int) -> np.ndarray:
        """The n_frames window ending at track frame `newest`, padded by repeating the first and
        last frames; it must lie within the frames kept."""
        n_frames = self.frames.maxlen
        first_kept = self.count - len(self.frames)
        wanted = np.clip(np.arange(newest - n_frames + 1, newest + 1), 0, self.count - 1)
        return np.stack([self.frames[i - first_kept] for i in wanted])

    def runtime_frame(self, frame: int) -> int:
        return self.runtime_frames[frame - (self.count - len(self.frames))]


class StreamRuntime:
    """Lifts per-frame 2D keypoints of tracked people to 3D poses with any kasf Engine.

    image_size=(width, height): keypoints come in pixels of that image and are normalised the
    way the model was trained (kasf.normalization); normalized=True: they already are. lag and
    stride (see the module's docstring) default to the mode's: lag 0 (causal) or 13 (centred),
    stride 1. worker=True lifts the windows on a thread of their own (kasf.stream.windows), so a
    frame costs the app only its bookkeeping and the poses come back from a later call; use the
    runtime as a context manager, or stop() it, to end that thread. blend=True: see the module's
    docstring.
    """

    def __init__(self, engine: Engine, mode: str = "causal", image_size: Sequence[float] | None = None,
                 normalized: bool = False, close_after: int | None = None, lag: int | None = None,
                 stride: int = 1, worker: bool = False, blend: bool = False):
        if (image_size is None) == (not normalized):
            raise KasfError("say what the keypoints are: image_size=(width, height) for pixels, or "
                            "normalized=True for keypoints already in normalised screen units (not both)")
        if image_size is not None and (len(image_size) != 2 or min(image_size) <= 0):
            raise KasfError(f"image_size must be (width, height) in pixels, both positive, got {image_size}")
        if close_after is not None and close_after < 1:
            raise KasfError(f"close_after must be a positive number of frames, got {close_after}")
        self.n_frames = engine.n_frames
        self.lag = mode_lag(mode, self.n_frames) if lag is None else lag
        check_lag_stride(self.lag, stride, self.n_frames)
        self.engine, self.mode, self.close_after, self.stride = engine, mode, close_after, int(stride)
        self.blend = bool(blend)
        self.lag = int(self.lag)
        self.image_size = None if image_size is None else tuple(float(v) for v in image_size)
        self.frame = 0
        self.windows = 0                              # engine windows run so far
        self.latency = LatencyLog()
        self._tracks: dict[Hashable, _Track] = {}
        self._closed: dict[Hashable, int] = {}       # track id -> runtime frame it was closed at
        self._worker = EngineWorker(engine, self.latency) if worker else None

    @property
    def tracks(self) -> list[Hashable]:
        """Ids of the open tracks."""
        return list(self._tracks)

    @property
    def backlog(self) -> int:
        """Windows handed to the worker and not yet lifted (0 without a worker)."""
        return 0 if self._worker is None else self._worker.backlog

    def process(self, keypoints: Mapping[Hashable, np.ndarray]) -> list[PoseResult]:
        """One frame: {track id: keypoints [17, 3] (x, y, confidence in [0, 1])} for the people seen
        in it. The windows falling due go through one engine call (several, of the engine's
        max_batch, when more): those of tracks close_after closed, then those of the tracks given
        whose window falls on this frame, in the order given, each returning its frames up to `lag`
        frames back (none while the track is younger). Without a worker this returns their poses;
        with one it hands the windows to the worker and returns the poses lifted since the last call."""
        start = time.perf_counter()
        if not isinstance(keypoints, Mapping):
            raise InputError(f"frame {self.frame}: give keypoints as {{track id: array [17, 3]}}, "
                             f"got {type(keypoints).__name__}")
        checked = {track_id: self.check(track_id, values) for track_id, values in keypoints.items()}
        windows = self._close_idle(set(checked), start)
        for track_id, values in checked.items():
            track = self._tracks.get(track_id)
            if track is None:
                track = self._tracks[track_id] = _Track(self.n_frames, track_phase(track_id, self.stride),
                                                        Blend() if self.blend else None)
            track.push(values, self.frame)
            if self._due(track, track.count - 1):
                windows.append(self._window(track_id, track, track.count - 1, start))
        results = self._lift(windows)
        self.frame += 1
        self.latency.total.append(time.perf_counter() - start)
        return results

    def close(self, track_id: Hashable) -> list[PoseResult]:
        """End a track and lift its pending frames (windows padded at the end). Returns their poses,
        or with a worker the poses lifted since the last call (drain() waits for the rest)."""
        if track_id not in self._tracks:
            state = "was already closed" if track_id in self._closed else "was never opened"
            raise KasfError(f"cannot close track {track_id!r}: it {state}")
        return self._lift(self._end(track_id, time.perf_counter()))

    def close_all(self) -> list[PoseResult]:
        """End every open track (at the end of a stream), flushing their pending poses in one engine
        call; with a worker, wait for it: every pose not yet returned."""
        now = time.perf_counter()
        results = self._lift([window for track_id in list(self._tracks) for window in self._end(track_id, now)])
        return results + self.drain()

    def drain(self) -> list[PoseResult]:
        """With a worker, wait until it has lifted every window handed to it; the poses not yet returned."""
        return [] if self._worker is None else self._worker.drain()

    def stop(self) -> None:
        """End the worker's thread once it has lifted what it holds (drain() still returns those poses)."""
        if self._worker is not None:
            self._worker.stop()

    def __enter__(self) -> "StreamRuntime":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _due(self, track: _Track, newest: int) -> bool:
        """Whether the track's window ending at track frame `newest` goes through the engine."""
        return newest >= self.lag and (newest + 1 - self.lag + track.phase) % self.stride == 0

    def _window(self, track_id: Hashable, track: _Track, newest: int, due: float) -> Window:
        """The window ending at `newest`, returning the track's frames from the first not yet returned."""
        frames = range(track.emitted, min(newest - self.lag, track.count - 1) + 1)
        track.emitted = frames.stop
        first = self.n_frames - 1 - newest
        returns = tuple((track.runtime_frame(frame), frame, frame + first) for frame in frames)
        if track.blend is None:
            return Window(track_id, track.window(newest), returns, due)
        later = range(frames.stop, min(newest, track.count - 1) + 1)
        return Window(track_id, track.window(newest), returns, due, track.blend,
                      tuple((frame, frame + first) for frame in later))

    def _end(self, track_id: Hashable, due: float) -> list[Window]:
        """Close the track; the windows past its end (its last frame repeated) that return its pending frames."""
        track = self._tracks.pop(track_id)
        self._closed[track_id] = self.frame
        windows, newest = [], max(track.count, self.lag)     # a window at count - 1 was due in process()
        while track.emitted < track.count:
            if self._due(track, newest):
                windows.append(self._window(track_id, track, newest, due))
            newest += 1
        return windows

    def _close_idle(self, pushed: set, due: float) -> list[Window]:
        if self.close_after is None:
            return []
        idle = [track_id for track_id, track in self._tracks.items()
                if track_id not in pushed and self.frame - track.last_push >= self.close_after]
        return [window for track_id in idle for window in self._end(track_id, due)]

    def _lift(self, windows: list[Window]) -> list[PoseResult]:
        self.windows += len(windows)
        if self._worker is None:
            return lift(self.engine, windows, self.latency)
        if windows:
            self._worker.submit(windows)
        return self._worker.take()

    def check(self, track_id: Hashable, keypoints) -> np.ndarray:
        """Keypoints as a float32 [17, 3] array in normalised units, or an InputError naming the track
        (process() checks every track's before it changes any; a server checks a batch of requests)."""
        where = f"track {track_id!r} at frame {self.frame}"
        if track_id in self._closed:
            raise InputError(f"{where}: the track was closed at frame {self._closed[track_id]}; "
                             "a closed track cannot be reopened, give the person a new track id")
        keypoints = h36m_keypoints(keypoints, where).astype(np.float32)
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
