"""The mocap's detector error model: reproducible, at the configured rates, and shaped the way the
streaming runtime presents a real detector's mistakes to the model."""

from dataclasses import replace

import numpy as np
import pytest

from kasf.data import mocap
from kasf.data.mocap.detector import covered_frames, detector_noise, hold_missing
from kasf.errors import DataError
from kasf.keypoints.skeleton import FLIP_LEFT, FLIP_PERMUTATION, FLIP_RIGHT, NUM_JOINTS
from kasf.model.normalization import normalize_screen
from kasf.stream.runtime import _Track

TYPICAL = mocap.DETECTOR_ERRORS["typical"]
LEFT_LEG, RIGHT_LEG, LEFT_ARM, RIGHT_ARM = (4, 5, 6), (1, 2, 3), (11, 12, 13), (14, 15, 16)
# Errors without jitter, at rates high enough to count on a modest sample.
EXACT = mocap.DetectorErrors(missing_rate=0.1, swap_rate=0.1, dropout_rate=0.05)


def true_pixels(frames, seed=0):
    """Distinct joint positions of a person 500 px tall, moving a little from frame to frame."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(200, 800, size=(1, NUM_JOINTS, 2))
    return (start + np.cumsum(rng.normal(size=(frames, NUM_JOINTS, 2)), axis=0)).astype(np.float32)


def detect(errors, frames=20000, seed=0):
    pixels = true_pixels(frames)
    detected, confidence = detector_noise(np.random.default_rng(seed), pixels, np.full(frames, 500.0), errors)
    return pixels, detected, confidence


def runs(mask):
    """Lengths of the runs of True in a 1D mask."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


def shows(detected, pixels, joints, true_joints):
    """Frames where the detected `joints` sit exactly on the true `true_joints`."""
    return (detected[:, joints] == pixels[:, true_joints]).all(axis=(1, 2))


def test_the_error_model_is_reproducible_from_the_seed():
    first = mocap.build_mocap_source(cameras_per_motion=2, detector_errors=TYPICAL, seed=3)
    again = mocap.build_mocap_source(cameras_per_motion=2, detector_errors=TYPICAL, seed=3)
    other = mocap.build_mocap_source(cameras_per_motion=2, detector_errors=TYPICAL, seed=4)
    for name in first:
        for key in first[name]:
            np.testing.assert_array_equal(first[name][key], again[name][key])
        assert not np.array_equal(first[name]["confidence"], other[name]["confidence"])
    test = first["test"]
    assert (test["confidence"] == 0).any() and (test["confidence"] < 1).all()


@pytest.mark.parametrize("rate, lengths", [(0.02, (1, 10)), (0.1, (2, 8)), (0.3, (1, 1))])
def test_runs_cover_the_configured_share_of_frames(rate, lengths):
    covered = covered_frames(np.random.default_rng(0), 4000, 50, rate, lengths)
    assert covered.mean() == pytest.approx(rate, rel=0.05)
    assert covered[:200].mean() == pytest.approx(rate, rel=0.25)   # the sequences' starts too
    lengths_seen = np.concatenate([runs(column) for column in covered.T])
    assert lengths_seen.min() >= lengths[0]


def test_rates_match_the_config():
    pixels, detected, confidence = detect(EXACT)
    dropped = (confidence == 0).all(axis=1)
    assert dropped.mean() == pytest.approx(EXACT.dropout_rate, rel=0.15)
    missing = (confidence == 0)[~dropped]
    assert missing.mean() == pytest.approx(EXACT.missing_rate, rel=0.1)
    swapped = (detected != pixels).any(axis=2) & (confidence > 0)
    assert swapped[~dropped].any(axis=1).mean() == pytest.approx(EXACT.swap_rate, rel=0.2)


def test_swaps_exchange_whole_legs_arms_or_sides():
    pixels, detected, confidence = detect(EXACT)
    legs = shows(detected, pixels, LEFT_LEG + RIGHT_LEG, RIGHT_LEG + LEFT_LEG)
    arms = shows(detected, pixels, LEFT_ARM + RIGHT_ARM, RIGHT_ARM + LEFT_ARM)
    straight = shows(detected, pixels, list(range(NUM_JOINTS)), list(range(NUM_JOINTS)))
    seen = (confidence > 0).all(axis=1)
    assert (legs[seen] | arms[seen] | straight[seen]).all()          # nothing but whole limbs moves
    assert (legs & ~arms).any() and (arms & ~legs).any() and (legs & arms).any()
    sides = shows(detected, pixels, list(range(NUM_JOINTS)), FLIP_PERMUTATION)
    np.testing.assert_array_equal(sides[seen], (legs & arms)[seen])
    np.testing.assert_array_equal(confidence[sides & seen][:, list(FLIP_LEFT + FLIP_RIGHT)], EXACT.swap_confidence)
    assert (confidence[straight & seen] == 1).all()
    assert np.percentile(runs(legs | arms), 90) <= EXACT.swap_frames[1]


def test_dropouts_blank_the_whole_person_for_a_few_frames():
    pixels, detected, confidence = detect(replace(EXACT, missing_rate=0.0, swap_rate=0.0))
    dropped = (confidence == 0).all(axis=1)
    assert ((confidence == 0).any(axis=1) == dropped).all()
    lengths = runs(dropped)
    assert lengths.min() >= 1 and np.median(lengths) <= EXACT.dropout_frames[1]
    later = np.flatnonzero(dropped[1:]) + 1
    np.testing.assert_array_equal(detected[later], detected[later - 1])   # the last frame seen, held


def test_missing_joints_have_confidence_0_and_the_runtimes_coordinates():
    pixels, detected, confidence = detect(EXACT, frames=600)
    readers = np.concatenate([np.where(confidence[..., None] > 0, detected, 0.0), confidence[..., None]], axis=-1)
    track = _Track(600, 0, None)
    for frame, keypoints in enumerate(normalize_screen(readers, *mocap.RESOLUTION)):
        track.push(keypoints, frame)
    presented = np.stack(track.frames)
    np.testing.assert_allclose(presented[..., :2], normalize_screen(detected, *mocap.RESOLUTION), atol=1e-5)
    np.testing.assert_array_equal(presented[..., 2], confidence)


def test_holding_starts_at_the_pelvis_and_the_image_centre():
    pixels = true_pixels(3)
    seen = np.zeros((3, NUM_JOINTS), bool)
    seen[1, 0] = seen[2, [0, 5]] = True
    held = hold_missing(pixels, seen)
    np.testing.assert_array_equal(held[0], np.broadcast_to(np.array(mocap.RESOLUTION) / 2, (NUM_JOINTS, 2)))
    np.testing.assert_array_equal(held[1], np.broadcast_to(pixels[1, 0], (NUM_JOINTS, 2)))
    np.testing.assert_array_equal(held[2, [0, 5]], pixels[2, [0, 5]])
    np.testing.assert_array_equal(held[2, 1], pixels[2, 0])


def test_confidence_falls_where_the_error_is_larger():
    pixels, detected, confidence = detect(replace(TYPICAL, swap_rate=0.0, missing_rate=0.0, dropout_rate=0.0))
    error = np.linalg.norm(detected - pixels, axis=-1)
    order = np.argsort(error, axis=None)
    by_error = confidence.ravel()[order]
    assert (np.diff(by_error) <= 1e-4).all()  # float32 pixels blur near-ties
    pixels, detected, confidence = detect(TYPICAL)
    error = np.linalg.norm(detected - pixels, axis=-1)
    seen = confidence > 0
    large = error > np.percentile(error[seen], 95)
    assert confidence[seen & large].mean() < 0.5 < confidence[seen & ~large].mean()


def test_ground_truth_2d_and_jitter_alone_are_as_before():
    assert not mocap.GROUND_TRUTH_2D.active and mocap.DETECTOR_ERRORS["none"] == mocap.GROUND_TRUTH_2D
    clean = mocap.build_mocap_source(cameras_per_motion=1)
    jitter = mocap.DetectorErrors(noise_px=6.0)
    noisy = mocap.build_mocap_source(cameras_per_motion=1, detector_errors=jitter)
    typical = mocap.build_mocap_source(cameras_per_motion=1, detector_errors=replace(TYPICAL, noise_px=6.0))
    for name in clean:
        assert "confidence" not in clean[name]
        np.testing.assert_array_equal(clean[name]["joint_2d"], clean[name]["joint3d_image"][..., :2])
        # the other errors come after the jitter's draws: where they leave a joint alone, it is the jitter's
        untouched = (typical[name]["confidence"] == noisy[name]["confidence"])
        assert untouched.mean() > 0.85
        np.testing.assert_array_equal(typical[name]["joint_2d"][untouched], noisy[name]["joint_2d"][untouched])


def test_the_cache_key_follows_the_error_model(tmp_path):
    options = {"cameras_per_motion": 1, "cache_dir": tmp_path}
    mocap.load_mocap_source(**options)
    mocap.load_mocap_source(detector_errors=TYPICAL, **options)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    mocap.load_mocap_source(detector_errors=replace(TYPICAL, swap_frames=(2, 9)), **options)
    assert len(list(tmp_path.glob("*.npz"))) == 3
    again = mocap.load_mocap_source(detector_errors=replace(TYPICAL, swap_frames=(2, 8)), **options)
    assert len(list(tmp_path.glob("*.npz"))) == 3
    assert (again["test"]["confidence"] == 0).any()


@pytest.mark.parametrize("change, message", [
    ({"noise_px": -1.0}, "noise_px must be zero or positive"),
    ({"missing_rate": 1.0}, r"missing_rate must lie in \[0, 1\)"),
    ({"dropout_frames": (3, 2)}, "dropout_frames must be"),
    ({"swap_confidence": 0.0}, "swap_confidence"),
])
def test_impossible_settings_are_refused(change, message):
    with pytest.raises(DataError, match=message):
        replace(TYPICAL, **change)


def test_presets_describe_themselves():
    assert mocap.DETECTOR_ERRORS["none"].describe() == "ground-truth 2D"
    assert "4% of joints missing" in TYPICAL.describe()
