"""Track ids for detector people that come without them (OpenPose writes `person_id: [-1]`).

kasf's streaming runtime (kasf.stream.runtime) keeps one sliding window per track id and refuses
an id whose track closed, so people need ids that follow them before they are lifted, and a new
id when they come back after a long absence. Each frame's people are matched to the open tracks
by scipy's linear_sum_assignment on a pose distance: the mean distance of the joints both saw to
where each joint's recent velocity carries it, over the person's size. benchmarks/tracking.py
measured it against norfair's keypoint tracker (a Kalman filter per joint, greedy matching),
roboflow `trackers`' SORT, ByteTrack and OC-SORT on boxes around the joints, and the same matcher
without velocities: it made the fewest identity switches, so no tracking library is used.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..errors import InputError
from .layouts import h36m_keypoints
from .skeleton import NUM_JOINTS

DEFAULT_PATIENCE = 15       # frames a track waits for its person
DEFAULT_THRESHOLD = 0.5     # largest pose distance (mean joint distance / person size) of a match
VELOCITY_WEIGHT = 0.6       # weight of a joint's newest step in its velocity (a moving average)
SMALLEST = 0.01             # a person's size counts as at least this much of the image diagonal (and 1 px)
UNMATCHABLE = 1e6           # the cost of a person and a track that share no seen joint


class _Tracks:
    """The open tracks: per track its joints' last seen positions, the frames they were seen at,
    their velocities (pixels per frame) and the last frame the track was matched."""

    def __init__(self):
        self.names: list[int] = []
        self.xy = np.zeros((0, NUM_JOINTS, 2))
        self.seen_at = np.zeros((0, NUM_JOINTS))          # -inf: never seen
        self.velocity = np.zeros((0, NUM_JOINTS, 2))
        self.matched_at = np.zeros(0)

    def keep(self, alive: np.ndarray) -> None:
        self.names = [name for name, keep in zip(self.names, alive) if keep]
        self.xy, self.seen_at = self.xy[alive], self.seen_at[alive]
        self.velocity, self.matched_at = self.velocity[alive], self.matched_at[alive]

    def predict(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Where each track's joints should be at `frame`, and which of them it has seen."""
        seen = np.isfinite(self.seen_at)
        elapsed = np.where(seen, frame - self.seen_at, 0.0)
        return self.xy + self.velocity * elapsed[..., None], seen

    def open(self, name: int) -> int:
        self.names.append(name)
        self.xy = np.concatenate([self.xy, np.zeros((1, NUM_JOINTS, 2))])
        self.seen_at = np.concatenate([self.seen_at, np.full((1, NUM_JOINTS), -np.inf)])
        self.velocity = np.concatenate([self.velocity, np.zeros((1, NUM_JOINTS, 2))])
        self.matched_at = np.append(self.matched_at, 0.0)
        return len(self.names) - 1

    def update(self, row: int, xy: np.ndarray, seen: np.ndarray, frame: int) -> None:
        before = seen & np.isfinite(self.seen_at[row])
        step = (xy[before] - self.xy[row, before]) / (frame - self.seen_at[row, before])[:, None]
        self.velocity[row, before] += VELOCITY_WEIGHT * (step - self.velocity[row, before])
        self.xy[row, seen], self.seen_at[row, seen] = xy[seen], frame
        self.matched_at[row] = frame


def track_people(frames: Sequence[Sequence[np.ndarray]], image_size: tuple[float, float] | None = None,
                 **options) -> list[dict[int, np.ndarray]]:
    """Give each frame's people track ids: per frame {track id: the same array object}.

    frames: per frame, the people seen in it, each an array [17, 3] of Human3.6M-17 joints (x, y
    in pixels, confidence in [0, 1]; a joint with confidence 0 or a non-finite coordinate is
    unseen and its coordinates are ignored). image_size (W, H) sets the smallest size a person
    counts as (1% of the image diagonal; without it, of the extent of all seen joints).

    Ids are ints from 0 up in order of first appearance, never reused. Options:

    - patience (default 15): a track waits that many frames for its person; a person unseen for
      longer gets a new id when seen again;
    - threshold (default 0.5): a person joins a track only if the mean distance of the joints
      both saw, to where the track's joint velocities carry them, is below threshold times the
      larger of the two sizes (the diagonal of the seen joints' box).

    People crossing keep their ids when their paths or poses differ; two people in the same place
    with the same pose cannot be told apart there and may trade ids on those frames (their
    velocities still carry each on its own way afterwards).

    Every person appears in the output exactly once, except people with no seen joint at all:
    they are left out, as nothing places them. Raises InputError for input of the wrong shape
    or type, or bad option values.
    """
    patience, threshold = _options(options)
    frames = _frames(frames)
    people = [[h36m_keypoints(person, f"frame {f} person {p}").astype(np.float64) for p, person in enumerate(frame)]
              for f, frame in enumerate(frames)]
    smallest = max(SMALLEST * _diagonal(people, image_size), 1.0)     # pixels
    tracks, next_name, output = _Tracks(), 0, []
    for number, (frame, keypoints) in enumerate(zip(frames, people)):
        tracks.keep(number - tracks.matched_at - 1 <= patience)
        index = [i for i, values in enumerate(keypoints) if _seen(values).any()]
        xy = np.array([np.nan_to_num(keypoints[i][:, :2]) for i in index], float).reshape(-1, NUM_JOINTS, 2)
        seen = np.array([_seen(keypoints[i]) for i in index], bool).reshape(-1, NUM_JOINTS)
        cost = _costs(xy, seen, *tracks.predict(number), smallest)
        rows, columns = linear_sum_assignment(cost)
        matched = {r: c for r, c in zip(rows, columns) if cost[r, c] < threshold}
        named = {}
        for person, i in enumerate(index):
            row = matched.get(person)
            if row is None:
                row, next_name = tracks.open(next_name), next_name + 1
            tracks.update(row, xy[person], seen[person], number)
            named[tracks.names[row]] = frame[i]
        output.append(dict(sorted(named.items())))
    return output


def _costs(xy: np.ndarray, seen: np.ndarray, guess: np.ndarray, known: np.ndarray, smallest: float) -> np.ndarray:
    """[people, tracks]: the mean distance of the joints both saw over the larger pose's size (the
    diagonal of its seen joints' box, at least `smallest`); UNMATCHABLE when they share none."""
    both = seen[:, None] & known[None]
    distance = np.linalg.norm(xy[:, None] - guess[None], axis=-1)
    count = both.sum(axis=-1)
    mean = np.where(both, distance, 0.0).sum(axis=-1) / np.maximum(count, 1)
    size = np.maximum(np.maximum(_sizes(xy, seen)[:, None], _sizes(guess, known)[None]), smallest)
    return np.where(count > 0, mean / size, UNMATCHABLE)


def _sizes(xy: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Per pose, the diagonal of its seen joints' box (0 with none seen)."""
    low = np.where(seen[..., None], xy, np.inf).min(axis=-2)
    high = np.where(seen[..., None], xy, -np.inf).max(axis=-2)
    return np.where(seen.any(axis=-1), np.linalg.norm(high - low, axis=-1), 0.0)


def _seen(keypoints: np.ndarray) -> np.ndarray:
    return (keypoints[:, 2] > 0) & np.isfinite(keypoints[:, :2]).all(axis=1)


def _diagonal(people: list[list[np.ndarray]], image_size: tuple[float, float] | None) -> float:
    """The image diagonal in pixels, or the extent of all seen joints without an image size."""
    if image_size is not None:
        try:
            width, height = (float(v) for v in image_size)
        except (TypeError, ValueError):
            raise InputError(f"image_size must be (width, height) in pixels, got {image_size!r}") from None
        if not (width > 0 and height > 0 and np.isfinite(width * height)):
            raise InputError(f"image_size must be two positive sizes in pixels, got {image_size!r}")
        return float(np.hypot(width, height))
    seen = [person[_seen(person), :2] for frame in people for person in frame]
    xy = np.concatenate(seen) if seen else np.zeros((0, 2))
    return float(np.linalg.norm(np.ptp(xy, axis=0))) if len(xy) else 0.0


def _frames(frames) -> list:
    expected = f"a list with, per frame, a list of the people's [{NUM_JOINTS}, 3] keypoint arrays"
    if isinstance(frames, (str, bytes, np.ndarray)) or not isinstance(frames, Sequence):
        raise InputError(f"frames must be {expected}, got {type(frames).__name__}")
    for index, frame in enumerate(frames):
        if isinstance(frame, np.ndarray) and frame.ndim != 3 or isinstance(frame, (str, bytes)) \
                or not isinstance(frame, (Sequence, np.ndarray)):
            got = f"an array of shape {list(frame.shape)}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise InputError(f"frame {index} must be a list of the people's [{NUM_JOINTS}, 3] keypoint arrays, "
                             f"got {got}")
    return list(frames)


def _options(options: dict) -> tuple[int, float]:
    unknown = set(options) - {"patience", "threshold"}
    if unknown:
        raise TypeError(f"track_people got unknown options {sorted(unknown)}; it takes patience and threshold")
    patience = options.get("patience", DEFAULT_PATIENCE)
    threshold = options.get("threshold", DEFAULT_THRESHOLD)
    if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 1:
        raise InputError(f"patience must be a positive whole number of frames, got {patience!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < np.inf:
        raise InputError(f"threshold must be a positive number, got {threshold!r}")
    return int(patience), float(threshold)
