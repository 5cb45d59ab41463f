"""Which tracker should give detector people (OpenPose `person_id: [-1]`) their track ids?

    python benchmarks/tracking.py --scenes 12 --frames 150 --patience 15

Builds multi-person scenes from the embedded motion capture's test sequences (kasf.stream.realtime
.recorded_people): 3-6 people, each a sequence replayed back and forth, shifted sideways so people
pass close to and cross each other, entering and leaving at different frames, some leaving for
longer than the patience and coming back (a new true identity), with detector-like noise: jitter
proportional to the person's size, random missing joints (confidence 0, coordinates NaN or 0), now
and then a person with only a few joints seen, dropped detections for a few frames, joints outside
the image unseen, people shuffled within each frame. Runs every tracker installed on the same
scenes and on the real OpenPose folder tests/fixtures/detectors/pose2sim/participants12_cam01
(no ground truth: ids created, ideally 3, and the frames each id spans), and prints one row per
tracker: identity switches (a true identity's id changing between its detections), fragmented
identities (given more than one id), merged ids (one id given to more than one true identity),
ids created against true identities, detections left without an id, and time per frame.

The rows: kasf.keypoints.tracking.track_people (scipy's linear_sum_assignment on a pose distance
to where each joint's velocity carries it), the same without velocities (the plain baseline),
norfair's keypoint tracker, and roboflow `trackers`' SORT, ByteTrack and OC-SORT on boxes around
the seen joints. norfair (pip install "norfair<2.2": its 2.2 and 2.3 pin numpy<2) and trackers
(pip install trackers: with supervision, opencv-python and av, about 300 MB) are optional: the
rows of one not installed are left out. Every tracker runs with the settings that did best in
a sweep on 12 smaller scenes (120 frames, seed 0); the ranking below held on seeds 0 to 6.
motpy is not compared: its MultiObjectTracker.step does not say which detection each track took.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from unittest import mock

import numpy as np

from kasf.keypoints import tracking
from kasf.keypoints.layouts import to_h36m
from kasf.keypoints.tracking import track_people
from kasf.stream.realtime import back_and_forth, recorded_people
from kasf.table import render_table

POSE2SIM = Path(__file__).resolve().parents[1] / "tests/fixtures/detectors/pose2sim/participants12_cam01"


# ---------------------------------------------------------------- scenes with ground truth

def make_scene(base: list[np.ndarray], size: tuple[float, float], rng: np.random.Generator, people: int,
               frames: int, patience: int) -> tuple[list[list[np.ndarray]], dict[int, int], int]:
    """Per frame the detected people (shuffled); id(array) -> true identity; identities in all. A
    person unseen for more than `patience` frames comes back as a new identity."""
    scene: list[list[np.ndarray]] = [[] for _ in range(frames)]
    truth, identities = {}, 0
    for _ in range(people):
        sequence, phase = base[rng.integers(len(base))], int(rng.integers(48))
        offset, scale = rng.uniform(-0.3, 0.3) * size[0], rng.uniform(0.6, 1.0)
        anchor = sequence[:, 0, :2].mean(axis=0)
        start = int(rng.integers(0, frames // 3))
        end = int(rng.integers(2 * frames // 3, frames + 1))
        away, dropped, last = _absence(rng, start, end, patience), 0, None
        for frame in range(start, end):
            if dropped or rng.random() < 0.03:
                dropped = dropped - 1 if dropped else int(rng.integers(0, 4))
                continue
            pose = back_and_forth(sequence, frame + phase).copy()
            pose[:, :2] = (pose[:, :2] - anchor) * scale + anchor + (offset, 0.0)
            detection = None if frame in away else _detect(pose, size, rng)
            if detection is None:
                continue
            if last is None or frame - last - 1 > patience:
                identities += 1
            scene[frame].append(detection)
            truth[id(detection)], last = identities, frame
    for detections in scene:
        rng.shuffle(detections)
    return scene, truth, identities


def _absence(rng: np.random.Generator, start: int, end: int, patience: int) -> set[int]:
    """A third of the people leave once for 1.5 to 3 patiences (they come back as a new identity)."""
    length = int(rng.uniform(1.5, 3.0) * patience)
    if rng.random() > 1 / 3 or end - start < length + 20:
        return set()
    leave = int(rng.integers(start + 10, end - length - 10 + 1))
    return set(range(leave, leave + length))


def _detect(pose: np.ndarray, size: tuple[float, float], rng: np.random.Generator) -> np.ndarray | None:
    """Detector-like noise on one true pose; None when no joint falls inside the image."""
    height = np.ptp(pose[:, 1])
    out = pose.astype(np.float32).copy()
    out[:, :2] += rng.normal(0.0, 0.02 * height, (17, 2))
    out[:, 2] = rng.uniform(0.4, 1.0, 17)
    missing = rng.random(17) < 0.1
    if rng.random() < 0.03:
        missing = np.ones(17, bool)
        missing[rng.choice(17, int(rng.integers(1, 4)), replace=False)] = False
    inside = (out[:, 0] >= 0) & (out[:, 0] < size[0]) & (out[:, 1] >= 0) & (out[:, 1] < size[1])
    missing |= ~inside
    if missing.all():
        return None
    out[missing] = (np.nan if rng.random() < 0.5 else 0.0, np.nan, 0.0)
    out[missing, 1] = out[missing, 0]
    return out


def score(output: list[dict[int, np.ndarray]], scene: list[list[np.ndarray]], truth: dict[int, int]) -> dict:
    """Identity switches, fragmented identities, merged ids, ids created, detections without an id."""
    last: dict[int, int] = {}
    ids_of, identities_of = defaultdict(set), defaultdict(set)
    switches = assigned = 0
    for tracks in output:
        for track, person in tracks.items():
            identity = truth[id(person)]
            switches += identity in last and last[identity] != track
            last[identity] = track
            ids_of[identity].add(track)
            identities_of[track].add(identity)
            assigned += 1
    return {"switches": switches, "fragmented": sum(len(ids) > 1 for ids in ids_of.values()),
            "merged": sum(len(people) > 1 for people in identities_of.values()), "ids": len(identities_of),
            "unassigned": sum(map(len, scene)) - assigned}


# ---------------------------------------------------------------- the real OpenPose folder

def load_pose2sim(folder: Path = POSE2SIM) -> list[list[np.ndarray]]:
    """The folder's people per frame in Human3.6M-17 order, empty detections skipped."""
    frames = []
    for path in sorted(folder.glob("*.json")):
        people = json.loads(path.read_text())["people"]
        frames.append([to_h36m(np.array(p["pose_keypoints_2d"], np.float32).reshape(25, 3), "body25b")
                       for p in people if p["pose_keypoints_2d"]])
    return frames


def spans(output: list[dict[int, np.ndarray]]) -> list[int]:
    """Frames each id appears in, longest first."""
    counts = defaultdict(int)
    for tracks in output:
        for track in tracks:
            counts[track] += 1
    return sorted(counts.values(), reverse=True)


# ---------------------------------------------------------------- trackers

def kasf_tracker(frames, patience: int, size: tuple[float, float] | None):
    return track_people(frames, size, patience=patience)


def no_velocity(frames, patience: int, size: tuple[float, float] | None):
    """Baseline: kasf's matcher (scipy's linear_sum_assignment on the pose distance) matching each
    track's last seen joints, without joint velocities."""
    with mock.patch.object(tracking, "VELOCITY_WEIGHT", 0.0):
        return track_people(frames, size, patience=patience)


def seen_joints(person: np.ndarray) -> np.ndarray:
    return (person[:, 2] > 0) & np.isfinite(person[:, :2]).all(axis=1)


def pose_distance(a: np.ndarray, a_seen: np.ndarray, b: np.ndarray, b_seen: np.ndarray, smallest: float) -> float:
    """kasf's pose distance: the joints both saw, over the larger pose's seen joints' box diagonal."""
    both = a_seen & b_seen
    if not both.any():
        return 1e6
    size = max(*(np.linalg.norm(np.ptp(xy[seen], axis=0)) for xy, seen in ((a, a_seen), (b, b_seen))), smallest)
    return float(np.linalg.norm(a[both] - b[both], axis=1).mean() / size)


def norfair_tracker(frames, patience: int, size: tuple[float, float] | None, threshold: float = 0.5):
    """norfair's keypoint tracker (a constant-velocity Kalman filter per joint, greedy matching) on
    kasf's pose distance, in units of a thousandth of the image diagonal (R 1, Q 3: the best of a
    sweep; R and Q barely mattered). A track seen for n frames waits min(n, patience) frames."""
    from norfair import Detection, Tracker
    from norfair.filter import OptimizedKalmanFilterFactory

    unit = float(np.hypot(*size)) / 1000 if size else 1.0

    def distance(detection, tracked) -> float:
        known = tracked.live_points | (tracked.last_detection.scores > 0)
        value = pose_distance(detection.points, detection.scores > 0, tracked.estimate, known, 10.0)
        return value if value < 2 * threshold else 2 * threshold   # norfair exits on NaN or inf

    tracker = Tracker(distance_function=distance, distance_threshold=threshold, hit_counter_max=patience,
                      initialization_delay=0, pointwise_hit_counter_max=patience,
                      filter_factory=OptimizedKalmanFilterFactory(R=1.0, Q=3.0))
    names, output = {}, []
    for people in frames:
        detections = []
        for index, person in enumerate(people):
            seen = seen_joints(person)
            xy = person[:, :2].astype(np.float64) / unit
            points = np.where(seen[:, None], xy, xy[seen].mean(axis=0))   # norfair needs finite points
            detections.append(Detection(points, scores=seen.astype(np.float64), data=index))
        current = {id(detection) for detection in detections}
        out = {}
        for tracked in tracker.update(detections):
            if id(tracked.last_detection) in current:
                out[names.setdefault(tracked.id, len(names))] = people[tracked.last_detection.data]
        output.append(out)
    return output


def person_box(person: np.ndarray, padding: float = 0.1, smallest: float = 20.0) -> np.ndarray:
    """[x1, y1, x2, y2] around the seen joints, padded by `padding` of its size, at least `smallest` px."""
    xy = person[seen_joints(person), :2]
    low, high = xy.min(axis=0), xy.max(axis=0)
    pad = np.maximum((high - low) * padding, (smallest - (high - low)) / 2)
    return np.concatenate([low - pad, high + pad]).astype(np.float64)


def box_tracker(name: str):
    """A roboflow `trackers` tracker on boxes around the seen joints (confidence: the mean seen
    joint's), with the settings that did best here: DIoU (boxes apart still compare) at least -0.3,
    every box a high-confidence one that may start a track, ids from a track's first match. Its
    ids come a frame late (a new track's first box gets -1), so a box is tied to the tracklet it
    matched, or to the new tracklet that starts on it."""
    def run(frames, patience: int, size: tuple[float, float] | None):
        import supervision as sv
        import trackers

        options = {"lost_track_buffer": patience, "frame_rate": 30.0, "minimum_consecutive_frames": 1,
                   "minimum_iou_threshold": -0.3, "iou": trackers.DIoU()}
        options.update({"track_activation_threshold": 0.0} if name != "OCSORTTracker" else {})
        options.update({"high_conf_det_threshold": 0.0} if name != "SORTTracker" else {})
        tracker, names, output = getattr(trackers, name)(**options), {}, []
        for people in frames:
            before = set(tracker.tracks)
            boxes = np.array([person_box(p) for p in people]).reshape(-1, 4)
            confidence = np.array([p[seen_joints(p), 2].mean() for p in people])
            result = tracker.update(sv.Detections(xyxy=boxes, confidence=confidence,
                                                  data={"index": np.arange(len(people))}))
            by_id = {t.tracker_id: t for t in tracker.tracks if t.tracker_id != -1}
            spawned = {tuple(np.round(t.get_state_bbox(), 3)): t for t in tracker.tracks if t not in before}
            out = {}
            for index, track_id in zip(result.data.get("index", []), result.tracker_id):
                tracklet = by_id.get(track_id) if track_id != -1 else spawned.get(tuple(np.round(boxes[index], 3)))
                if tracklet is not None:
                    out[names.setdefault(tracklet, len(names))] = people[index]   # keeps it alive: no id() reuse
            output.append(out)
        return output
    return run


TRACKERS = {
    "kasf track_people": kasf_tracker,
    "kasf without velocities": no_velocity,
    "norfair 2.1.1 (keypoints)": norfair_tracker,
    "trackers SORT (boxes)": box_tracker("SORTTracker"),
    "trackers ByteTrack (boxes)": box_tracker("ByteTrackTracker"),
    "trackers OC-SORT (boxes)": box_tracker("OCSORTTracker"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=12, help="scenes per people count (3, 4, 5, 6)")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--patience", type=int, default=15, help="frames a lost track waits for its person")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    base, size = recorded_people(12)
    rng = np.random.default_rng(args.seed)
    scenes = [make_scene(base, size, rng, people, args.frames, args.patience)
              for people in (3, 4, 5, 6) for _ in range(args.scenes)]
    real = load_pose2sim()
    rows, true_ids = [], sum(s[2] for s in scenes)
    for name, tracker in TRACKERS.items():
        try:
            totals, elapsed = defaultdict(int), 0.0
            for frames, truth, _ in scenes:
                start = time.perf_counter()
                output = tracker(frames, args.patience, size)
                elapsed += time.perf_counter() - start
                for key, value in score(output, frames, truth).items():
                    totals[key] += value
            found = spans(tracker(real, args.patience, None))
        except ImportError as error:
            print(f"{name}: left out ({error})")
            continue
        ms = 1000 * elapsed / (len(scenes) * args.frames)
        rows.append([name, totals["switches"], totals["fragmented"], totals["merged"],
                     f"{totals['ids']} / {true_ids}", totals["unassigned"], ms, len(found),
                     " ".join(map(str, found))])
    detections = sum(len(p) for frames, _, _ in scenes for p in frames)
    title = (f"{len(scenes)} scenes of 3-6 people, {args.frames} frames, {detections} detections, patience "
             f"{args.patience}; pose2sim participants12_cam01: {len(real)} frames, "
             f"{sum(map(len, real))} detections")
    print(render_table(["tracker", "ID switches", "fragmented", "merged", "ids / true", "unassigned",
                        "ms/frame", "pose2sim ids", "pose2sim frames per id"], rows, title=title))


if __name__ == "__main__":
    main()
