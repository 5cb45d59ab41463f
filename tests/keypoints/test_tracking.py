import json
from pathlib import Path

import numpy as np
import pytest

from kasf.errors import InputError
from kasf.keypoints.layouts import to_h36m
from kasf.keypoints.tracking import track_people

from conftest import PARTICIPANTS

SIZE = (1920, 1080)

# A standing person, pelvis at the origin, about 260 px tall (Human3.6M-17 order).
STANDING = np.array([(0, 0), (-15, 0), (-15, 70), (-15, 140), (15, 0), (15, 70), (15, 140), (0, -40), (0, -80),
                     (0, -100), (0, -120), (25, -80), (35, -40), (40, 0), (-25, -80), (-35, -40), (-40, 0)],
                    np.float32)


def person(x: float, y: float, rng: np.random.Generator, jitter: float = 3.0) -> np.ndarray:
    keypoints = np.ones((17, 3), np.float32)
    keypoints[:, :2] = STANDING + (x, y) + rng.normal(0.0, jitter, (17, 2))
    return keypoints


def scene(paths, frames: int, seed: int = 0):
    """Per frame the people on `paths` (frame -> (x, y), or None when unseen), shuffled, and
    id(array) -> the path's index."""
    rng = np.random.default_rng(seed)
    out, owner = [], {}
    for frame in range(frames):
        people = []
        for index, path in enumerate(paths):
            place = path(frame)
            if place is not None:
                people.append(person(*place, rng))
                owner[id(people[-1])] = index
        rng.shuffle(people)
        out.append(people)
    return out, owner


def ids_per_person(output, owner) -> dict[int, list[int]]:
    ids = {}
    for tracks in output:
        for track, keypoints in tracks.items():
            ids.setdefault(owner[id(keypoints)], []).append(track)
    return ids


def test_separated_people_keep_their_ids_in_shuffled_order():
    paths = [lambda f, x=x: (x + 6 * f, 300 + 2 * f) for x in (200, 700, 1200)]
    frames, owner = scene(paths, 60)
    output = track_people(frames, SIZE)
    assert len(output) == 60
    for people, tracks in zip(frames, output):
        assert sorted(map(id, tracks.values())) == sorted(map(id, people))   # the same objects, each once
    ids = ids_per_person(output, owner)
    assert all(len(set(track)) == 1 for track in ids.values())
    assert sorted(track[0] for track in ids.values()) == [0, 1, 2]


def test_ids_count_up_in_order_of_first_appearance():
    paths = [lambda f: (200, 400), lambda f: (900, 400) if f >= 5 else None,
             lambda f: (1500, 400) if f >= 12 else None]
    frames, owner = scene(paths, 20)
    ids = ids_per_person(track_people(frames, SIZE), owner)
    assert {person: set(track) for person, track in ids.items()} == {0: {0}, 1: {1}, 2: {2}}


def test_people_crossing_on_different_paths_keep_their_ids():
    # one walks right, the other left a little further back; they overlap for several frames
    paths = [lambda f: (200 + 20 * f, 500), lambda f: (1000 - 20 * f, 515)]
    for seed in range(5):
        frames, owner = scene(paths, 41, seed)
        ids = ids_per_person(track_people(frames, SIZE), owner)
        assert all(len(set(track)) == 1 for track in ids.values()), seed


def test_identical_people_meeting_exactly_trade_ids_at_most_while_they_coincide():
    paths = [lambda f: (200 + 10 * f, 500), lambda f: (1000 - 10 * f, 500)]   # the same place at frame 40
    for seed in range(5):
        frames, owner = scene(paths, 81, seed)
        ids = ids_per_person(track_people(frames, SIZE), owner)
        for track in ids.values():
            assert set(track[:38]) == set(track[43:]) == {track[0]}, seed
        assert ids[0][0] != ids[1][0]


def test_a_person_gone_longer_than_the_patience_gets_a_new_id_and_ids_are_never_reused():
    gone = range(20, 31)                          # 11 frames unseen
    paths = [lambda f: None if f in gone else (300 + 2 * f, 400), lambda f: (1400, 400) if f else None]
    frames, owner = scene(paths, 50)
    patient = ids_per_person(track_people(frames, SIZE, patience=15), owner)
    assert set(patient[0]) == {0}
    impatient = track_people(frames, SIZE, patience=5)
    ids = ids_per_person(impatient, owner)
    assert ids[1] == [1] * 49
    assert ids[0] == [0] * 20 + [2] * 19          # back as a new id, and 0 never comes again
    assert all(0 not in tracks for tracks in impatient[20:])


@pytest.mark.parametrize("seen_for", [1, 10])
def test_a_track_waits_exactly_the_patience(seen_for):
    for gap, same in ((5, True), (6, False)):
        frames, owner = scene([lambda f: None if seen_for <= f < seen_for + gap else (500, 400)], seen_for + gap + 1)
        output = track_people(frames, SIZE, patience=5)
        assert list(output[-1]) == ([0] if same else [1]), gap


def test_missing_joints_and_a_person_with_almost_nothing_seen_keep_the_id():
    rng = np.random.default_rng(1)
    frames, owner = scene([lambda f: (300 + 8 * f, 400), lambda f: (1300 - 8 * f, 420)], 40)
    for number, people in enumerate(frames):
        for keypoints in people:
            missing = rng.random(17) < 0.3 if number != 20 else np.arange(17) >= 2   # frame 20: two joints,
            keypoints[missing, 2] = 0.0
            keypoints[missing, :2] = np.nan if rng.random() < 0.5 else 0.0
            keypoints[:2, :2] += 20.0 if number == 20 else 0.0                       # 20 px off
    ids = ids_per_person(track_people(frames, SIZE), owner)
    assert all(len(track) == 40 and len(set(track)) == 1 for track in ids.values())


def test_a_person_sharing_no_seen_joint_with_a_track_does_not_join_it():
    rng = np.random.default_rng(0)
    lower = [person(300, 400, rng) for _ in range(10)]
    for keypoints in lower:
        keypoints[7:, 2] = 0.0                    # only the legs and pelvis seen
    upper = person(1500, 400, rng)
    upper[:7, 2] = 0.0                            # only the upper body seen, far away, while the legs are gone
    output = track_people([[keypoints] for keypoints in lower] + [[upper]], SIZE)
    assert list(output[-1]) == [1]


def test_a_fast_person_missed_for_a_few_frames_is_found_where_the_velocity_carries_them():
    frames, owner = scene([lambda f: None if 10 <= f < 14 else (100 + 40 * f, 400)], 30)
    assert [set(tracks) for tracks in track_people(frames, SIZE)] == [{0}] * 10 + [set()] * 4 + [{0}] * 16


def test_a_person_turning_back_keeps_the_id():
    paths = [lambda f: (300 + 30 * min(f, 20) - 30 * max(f - 20, 0), 400), lambda f: (1600, 400) if f else None]
    frames, owner = scene(paths, 40)
    ids = ids_per_person(track_people(frames, SIZE), owner)
    assert ids == {0: [0] * 40, 1: [1] * 39}


def test_a_person_with_no_seen_joint_is_left_out():
    rng = np.random.default_rng(0)
    unseen = person(800, 400, rng)
    unseen[:, 2] = 0.0
    seen = person(300, 400, rng)
    output = track_people([[unseen, seen], [seen.copy()]], SIZE)
    assert [list(tracks) for tracks in output] == [[0], [0]]
    assert output[0][0] is seen


def test_empty_frames():
    assert track_people([]) == []
    assert track_people([[], []], SIZE) == [{}, {}]
    rng = np.random.default_rng(0)
    output = track_people([[], [person(400, 400, rng)], [], [person(402, 400, rng)]])
    assert [list(tracks) for tracks in output] == [[], [0], [], [0]]


@pytest.mark.parametrize("frames, message", [
    ([[np.zeros((17, 2), np.float32)]], r"frame 0 person 0: keypoints must have shape \[17, 3\]"),
    ([[], [np.ones((17, 3)), np.zeros((25, 3))]], r"frame 1 person 1: .*got \[25, 3\].*to_h36m"),
    ([[np.zeros((2, 17, 3))]], r"got \[2, 17, 3\]"),
    ([[np.full((17, 3), "a")]], "must be real numbers"),
    ([[[1, 2]]], "must have shape"),
    ([np.zeros((17, 3))], r"frame 0 must be a list .*got an array of shape \[17, 3\]"),
    ([[], 5], "frame 1 must be a list"),
    (np.zeros((3, 2, 17, 3)), "frames must be a list"),
    ("frames", "frames must be a list"),
])
def test_bad_input_is_an_input_error(frames, message):
    with pytest.raises(InputError, match=message):
        track_people(frames, SIZE)


def test_bad_options():
    frames = [[np.ones((17, 3), np.float32)]]
    with pytest.raises(InputError, match="image_size"):
        track_people(frames, (0, 1080))
    with pytest.raises(InputError, match="image_size"):
        track_people(frames, "big")
    with pytest.raises(InputError, match="patience"):
        track_people(frames, SIZE, patience=0)
    with pytest.raises(InputError, match="threshold"):
        track_people(frames, SIZE, threshold=-1.0)
    with pytest.raises(TypeError, match="unknown options"):
        track_people(frames, SIZE, max_age=3)


def test_real_openpose_folder_gives_few_long_tracks():
    frames = []
    for path in sorted(PARTICIPANTS.glob("*.json")):
        people = json.loads(path.read_text())["people"]
        frames.append([to_h36m(np.array(p["pose_keypoints_2d"], np.float32).reshape(25, 3), "body25b")
                       for p in people if p["pose_keypoints_2d"]])
    assert len(frames) == 40
    output = track_people(frames)
    for people, tracks in zip(frames, output):
        assert sorted(map(id, tracks.values())) == sorted(map(id, people))
    spans = {}
    for tracks in output:
        for track in tracks:
            spans[track] = spans.get(track, 0) + 1
    # measured: 4 ids spanning 40, 40, 38 and 1 frames (frame 37 splits one person in two detections)
    assert len(spans) <= 5
    assert all(span >= 38 for span in sorted(spans.values(), reverse=True)[:3])
