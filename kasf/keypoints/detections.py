"""A detector file's people, checked and converted to Human3.6M-17 frame by frame.

Every reader turns its format into RawPerson records (a frame number, a track id if the detector
gave one, the keypoints as the file holds them, and where in the file they came from); assemble()
does the rest the same way for every format: it checks the values, tells or checks the layout,
converts it and orders the frames, naming the file, frame and field of anything wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .layouts import LAYOUTS, Layout, get_layout, layouts_with, tell_25_point_layout, to_h36m


@dataclass
class RawPerson:
    """One person of one frame as the file holds them: keypoints [K, 3] (x, y, confidence)."""

    frame: int
    track: int | None
    keypoints: np.ndarray
    where: str


@dataclass
class Detections:
    """A detector file's people in Human3.6M-17 order (pixels, confidence in [0, 1]).

    frames[i] is frame first_frame + i: {track id: keypoints [17, 3]} when tracked, else a list
    of keypoints [17, 3] whose ids a tracker still has to give (kasf.keypoints.track_people).
    """

    path: Path
    format: str
    layout: Layout
    first_frame: int
    frames: list
    tracked: bool
    image_size: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def people(self) -> int:
        return sum(len(people) for people in self.frames)


def keypoint_array(values, where: str, channels: int = 3) -> np.ndarray:
    """A JSON list of numbers -> float32 [K, channels]; an InputError naming `where` otherwise."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where} is not a list of numbers") from None
    if array.ndim == 1 and array.size % channels == 0:
        array = array.reshape(-1, channels)
    if array.ndim != 2 or array.shape[1] != channels:
        raise InputError(f"{where} must hold {channels} numbers per keypoint, got shape {list(array.shape)}")
    return array


def _count_error(count: int, where: str) -> InputError:
    known = sorted({layout.size for layout in LAYOUTS.values()})
    names = "; ".join(f"{size}: {', '.join(layout.name for layout in layouts_with(size))}" for size in known)
    return InputError(f"{where} has {count} keypoints, a count no layout kasf knows has ({names}); "
                      "choose one with --layout if the detector wrote a different order of one of these")


def _check_values(person: RawPerson, layout: Layout) -> np.ndarray:
    """NaN or negative confidences, and seen joints without finite coordinates, are errors;
    confidences above 1 (some detectors' scores) count as 1; unseen joints get coordinates 0."""
    keypoints = person.keypoints
    confidence = keypoints[:, 2]
    for test, problem in ((np.isnan(confidence), "a NaN confidence"), (confidence < 0, "a negative confidence"),
                          ((confidence > 0) & ~np.isfinite(keypoints[:, :2]).all(axis=1),
                           "a NaN or infinite coordinate")):
        if test.any():
            joint = int(np.flatnonzero(test)[0])
            raise InputError(f"{person.where}: keypoint {joint} ({layout.joints[joint]}) has {problem} "
                             f"({keypoints[joint].tolist()})")
    seen = confidence > 0
    out = np.where(seen[:, None], keypoints, 0.0).astype(np.float32)
    out[:, 2] = np.minimum(confidence, 1.0)
    return out


def _choose_layout(records: list[RawPerson], layout: str | Layout | None) -> Layout:
    first = records[0]
    known = {known.size for known in LAYOUTS.values()}
    for person in records:
        if layout is None and len(person.keypoints) not in known:
            raise _count_error(len(person.keypoints), person.where)
        if len(person.keypoints) != len(first.keypoints):
            raise InputError(f"mixed layouts: {person.where} has {len(person.keypoints)} keypoints, "
                             f"{first.where} has {len(first.keypoints)}")
    count = len(first.keypoints)
    if layout is not None:
        chosen = get_layout(layout)
        if chosen.size != count:
            raise InputError(f"{first.where} has {count} keypoints; the {chosen.title} layout has {chosen.size}")
        return chosen
    if count == 25:
        told = tell_25_point_layout(np.stack([person.keypoints for person in records]))
        if told is None:
            raise InputError(f"{first.where}: 25 keypoints, and no person shows the neck, shoulders and hips that tell "
                             "BODY_25 from BODY_25B; choose one with --layout")
        return told
    return layouts_with(count)[0]


def assemble(records: list[RawPerson], path: Path, format_name: str, *, layout: str | Layout | None = None,
             frame_base: int = 0, image_size: tuple[float, float] | None = None,
             min_confidence: float = 0.0, min_joints: int = 4, notes: list[str] | None = None) -> Detections:
    """Check, convert and order a reader's records. Joints under min_confidence count as unseen;
    a person left with fewer than min_joints seen Human3.6M joints is dropped (a ghost detection
    gives the lifter nothing to stand on). Frame numbers must not go backwards in the file; the
    frames between the first and last number are all kept, empty where nobody was seen."""
    if not records:
        raise InputError(f"{path}: no people with keypoints in it")
    chosen = _choose_layout(records, layout)
    tracked = all(person.track is not None for person in records)
    first, last = records[0].frame, records[0].frame
    frames: dict[int, list[tuple[int | None, np.ndarray]]] = {}
    dropped = 0
    for person in records:
        if person.frame < last:
            raise InputError(f"{person.where}: frame {person.frame} comes after frame {last}; frames out of order")
        last = person.frame
        keypoints = _check_values(person, chosen)
        keypoints[keypoints[:, 2] < min_confidence] = 0.0
        h36m = to_h36m(keypoints, chosen)
        if int((h36m[:, 2] > 0).sum()) < min_joints:
            dropped += 1
            continue
        people = frames.setdefault(person.frame, [])
        if tracked and any(track == person.track for track, _ in people):
            raise InputError(f"{person.where}: track {person.track} appears twice in frame {person.frame}")
        people.append((person.track if tracked else None, h36m))
    notes = list(notes or [])
    if dropped:
        notes.append(f"{dropped} detections with fewer than {min_joints} joints seen were dropped")
    ordered = [frames.get(number, []) for number in range(first, last + 1)]
    ordered = [dict(people) if tracked else [keypoints for _, keypoints in people] for people in ordered]
    return Detections(path=path, format=format_name, layout=chosen, first_frame=first - frame_base, frames=ordered,
                      tracked=tracked, image_size=image_size, notes=notes)
