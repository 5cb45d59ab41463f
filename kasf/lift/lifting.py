"""A detector file's people lifted to 3D, whole tracks at once, through the streaming runtime (so
lag, stride, blending, tracks that start, break and end behave exactly as in a capture app), and
given a metric scale.

The model returns root-relative poses in its normalised screen units: depth and size are known
only up to the person's distance from the camera. LiftResult.metres() scales each track so that
its median standing height (the ankle-to-crown joint chain, which ends about 4% of a person's
height above the floor) is the height given: a documented assumption, written into every file
that holds metres.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..engines.base import Engine
from ..errors import InputError
from ..keypoints import Detections
from ..keypoints.skeleton import NUM_JOINTS, ROOT
from ..keypoints.tracking import track_people
from ..stream import StreamRuntime
from ..stream.capture import replay_frames
from ..stream.windows import PoseResult

DEFAULT_HEIGHT_M = 1.70
ANKLE_HEIGHT_SHARE = 0.04       # ankle joint above the floor, as a share of standing height (anthropometric tables)
# Joint chains from an ankle up to the crown: ankle-knee-hip-pelvis-spine-thorax-neck-head.
LEG_CHAINS = ((3, 2, 1, 0, 7, 8, 9, 10), (6, 5, 4, 0, 7, 8, 9, 10))


@dataclass
class LiftResult:
    """Every track's keypoints and poses on the detections' frames.

    keypoints, poses: [tracks, frames, 17, 3], NaN where a track has no keypoints or pose;
    poses in the model's root-relative normalised screen units, camera axes (x right, y down,
    z away from the camera)."""

    detections: Detections
    track_ids: list[int]
    keypoints: np.ndarray
    poses: np.ndarray
    results: list[PoseResult]
    image_size: tuple[float, float]
    fps: float
    lag: int
    stride: int
    height_m: float = DEFAULT_HEIGHT_M
    height_given: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def frame_numbers(self) -> np.ndarray:
        return self.detections.first_frame + np.arange(self.poses.shape[1])

    @property
    def confidences(self) -> np.ndarray:
        """[tracks, frames, 17]: the 2D confidences each pose was lifted from (0 where absent)."""
        return np.nan_to_num(self.keypoints[..., 2], nan=0.0)

    def track_heights(self) -> np.ndarray:
        """Each track's median ankle-to-crown chain, in model units ([tracks]; NaN without poses)."""
        chains = np.stack([sum(np.linalg.norm(self.poses[..., a, :] - self.poses[..., b, :], axis=-1)
                               for a, b in zip(chain, chain[1:])) for chain in LEG_CHAINS], -1)
        per_frame = chains.mean(axis=-1)
        with np.errstate(all="ignore"):
            return np.array([np.nanmedian(track) if np.isfinite(track).any() else np.nan for track in per_frame])

    def scale_note(self) -> str:
        source = "given with --height" if self.height_given else "kasf's default; give the person's with --height"
        return (f"each track scaled so its median ankle-to-crown joint chain is {1 - ANKLE_HEIGHT_SHARE:.2f} x "
                f"{self.height_m:.2f} m: a standing height of {self.height_m:.2f} m ({source}); monocular poses "
                "have no scale of their own")

    def metres(self) -> np.ndarray:
        """Poses in metres, root-relative, camera axes, each track scaled to height_m."""
        scale = (1 - ANKLE_HEIGHT_SHARE) * self.height_m / self.track_heights()
        relative = self.poses - self.poses[..., ROOT:ROOT + 1, :]
        return (relative * scale[:, None, None, None]).astype(np.float32)


def _tracked_frames(detections: Detections, image_size) -> tuple[list[dict[int, np.ndarray]], list[str]]:
    if detections.tracked:
        return detections.frames, []
    frames = track_people(detections.frames, image_size)
    ids = {track for people in frames for track in people}
    return frames, [f"the detector gave no track ids: {len(ids)} tracks made by kasf.keypoints.track_people"]


def _arrange(frames: list[dict[int, np.ndarray]], results: list[PoseResult]):
    track_ids = sorted({track for people in frames for track in people})
    row = {track: i for i, track in enumerate(track_ids)}
    keypoints = np.full((len(track_ids), len(frames), NUM_JOINTS, 3), np.nan, np.float32)
    poses = np.full_like(keypoints, np.nan)
    for frame, people in enumerate(frames):
        for track, points in people.items():
            keypoints[row[track], frame] = points
    for result in results:
        poses[row[result.track_id], result.frame] = result.pose
    return track_ids, keypoints, poses


def lift_detections(detections: Detections, engine: Engine, image_size: tuple[float, float] | None = None,
                    fps: float = 30.0, lag: int | None = None, stride: int = 1, blend: bool = False,
                    mode: str = "centred", height_m: float | None = None) -> LiftResult:
    """Lift every frame of the detections through a StreamRuntime, closing each track at the end.
    image_size: the camera's (W, H) in pixels, when the detections do not hold it."""
    image_size = image_size or detections.image_size
    if image_size is None:
        raise InputError(f"{detections.path}: no image size: the detections do not hold one; give it (--image-size "
                         "W H) or the video they came from (--video)")
    if height_m is not None and not 0.5 <= height_m <= 2.5:
        raise InputError(f"a person's height must be given in metres, between 0.5 and 2.5; got {height_m}")
    if not fps > 0:
        raise InputError(f"the frame rate must be positive, got {fps}")
    frames, notes = _tracked_frames(detections, image_size)
    runtime = StreamRuntime(engine, mode=mode, lag=lag, stride=stride, blend=blend, image_size=image_size)
    results = replay_frames(runtime, frames)
    track_ids, keypoints, poses = _arrange(frames, results)
    return LiftResult(detections=detections, track_ids=track_ids, keypoints=keypoints, poses=poses, results=results,
                      image_size=tuple(float(v) for v in image_size), fps=float(fps), lag=runtime.lag,
                      stride=runtime.stride, height_m=height_m or DEFAULT_HEIGHT_M, height_given=height_m is not None,
                      notes=detections.notes + notes)
