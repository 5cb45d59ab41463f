"""The server's stateful streaming model: one frame of one tracked person per request, that
track's poses back, every track's window kept on the server (kasf.stream.StreamRuntime) and the
windows of all the requests Triton batched together lifted in one engine call.

Triton's own answer to state is sequence batching with correlation ids, but PyTriton's ModelConfig
has no sequence batcher (0.7.0), so the track id is an input: `track_id` INT64 [1] and
`keypoints_2d` FP32 [17, 3] (x, y, confidence, in the engine's normalised screen units), and an
optional `end` BOOL [1] that closes the track and flushes its pending poses. The outputs are
`poses_3d` FP32 [k, 17, 3] and `track_frames` INT64 [k]: the poses this frame brought due (k = 1
in causal mode; 0 for a centred track's first 13 frames and 14 when it ends), with each one's frame
number within its track. A track unseen for `idle_s` seconds is dropped. The state lives in one
model instance, so a client's frames are handled in the order it sends them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Hashable

import numpy as np

from ..engines.base import Engine
from ..errors import InputError
from ..keypoints.skeleton import NUM_JOINTS
from ..stream import StreamRuntime

STREAM_INPUTS = (("track_id", np.int64, (1,)), ("keypoints_2d", np.float32, (NUM_JOINTS, 3)),
                 ("end", np.bool_, (1,)))
STREAM_OUTPUTS = (("poses_3d", np.float32, (-1, NUM_JOINTS, 3)), ("track_frames", np.int64, (-1,)))


@dataclass(frozen=True)
class StreamFrame:
    track_id: Hashable
    keypoints: np.ndarray
    end: bool


def read_frames(requests) -> list[StreamFrame]:
    """One StreamFrame per request, or an InputError naming the request that is not one frame."""
    frames = []
    for index, request in enumerate(requests):
        data = {name: np.asarray(request[name]) for name in ("track_id", "keypoints_2d") if name in request}
        if len(data) < 2 or any(array.shape[0] != 1 for array in data.values()):
            raise InputError(f"stream request {index}: send one frame per request, track_id [1, 1] and "
                             f"keypoints_2d [1, {NUM_JOINTS}, 3]")
        end = bool(np.asarray(request["end"]).reshape(-1)[0]) if "end" in request else False
        frames.append(StreamFrame(int(data["track_id"].reshape(-1)[0]), data["keypoints_2d"][0], end))
    return frames


def in_order(frames: list[StreamFrame]) -> list[list[int]]:
    """The requests' indices cut into runtime frames, each holding a track at most once, in order."""
    groups: list[list[int]] = []
    seen: set = set()
    for index, frame in enumerate(frames):
        if not groups or frame.track_id in seen:
            groups.append([])
            seen = set()
        groups[-1].append(index)
        seen.add(frame.track_id)
    return groups


class StreamEndpoint:
    """The inference callable of the streaming model (PyTriton calls it with the batched requests)."""

    def __init__(self, engine: Engine, mode: str = "causal", idle_s: float = 60.0):
        self.runtime = StreamRuntime(engine, mode=mode, normalized=True)
        self.idle_s = float(idle_s)
        self._last_seen: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def __call__(self, requests) -> list[dict[str, np.ndarray]]:
        frames = read_frames(requests)
        with self._lock:
            self._drop_idle(time.monotonic())
            for frame in frames:
                self.runtime.check(frame.track_id, frame.keypoints)
            poses: list[list] = [[] for _ in frames]
            for group in in_order(frames):
                by_track = {frames[i].track_id: i for i in group}
                results = self.runtime.process({frames[i].track_id: frames[i].keypoints for i in group})
                for i in group:
                    if frames[i].end:
                        results += self.runtime.close(frames[i].track_id)
                        self._last_seen.pop(frames[i].track_id, None)
                    else:
                        self._last_seen[frames[i].track_id] = time.monotonic()
                for result in results:
                    poses[by_track[result.track_id]].append(result)
        return [self._response(found) for found in poses]

    def _drop_idle(self, now: float) -> None:
        for track_id in [t for t, seen in self._last_seen.items() if now - seen > self.idle_s]:
            self.runtime.close(track_id)
            del self._last_seen[track_id]

    @staticmethod
    def _response(results) -> dict[str, np.ndarray]:
        results = sorted(results, key=lambda result: result.track_frame)
        poses = np.stack([r.pose for r in results]) if results else np.zeros((0, NUM_JOINTS, 3), np.float32)
        frames = np.array([r.track_frame for r in results], dtype=np.int64)
        return {"poses_3d": poses[None].astype(np.float32), "track_frames": frames[None]}
