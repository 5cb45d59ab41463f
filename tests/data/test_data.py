import pickle

import numpy as np
import pytest

from kasf.data.clips import clip_indices, make_clips, resample_indices
from kasf.data.source import parse_split, published_test_source, read_source
from kasf.data.splits import load_splits
from kasf.errors import DataError

from conftest import authors_split


def test_clip_indices_follow_the_stride_and_resample_short_sequences():
    source = np.array(["a"] * 60 + ["b"] * 27 + ["c"] * 10)
    train = clip_indices(source, 27, 9)
    # a: starts 0, 9, 18, 27 (27 + 27 <= 60; 36 + 27 > 60); b: one clip; c: resampled
    assert len(train) == 4 + 1 + 1
    assert train[3, 0] == 27 and train[4, 0] == 60
    assert np.array_equal(train[5], 87 + resample_indices(10, 27))
    test = clip_indices(source, 27, 27)
    assert len(test) == 2 + 1 + 1
    assert all(len(set(source[clip])) == 1 for clip in test)  # no clip crosses sequences


def test_resample_spreads_frames_evenly():
    assert resample_indices(10, 27).tolist() == np.floor(np.arange(27) * 10 / 27).astype(int).tolist()
    assert resample_indices(27, 27).tolist() == list(range(27))


def test_clip_count_and_normalisation_of_a_hand_built_file(source_pickle):
    frames = read_source(source_pickle, "test", evaluation=True)
    clips = make_clips(frames, {"outdoors": (1312, 1216)}, 27, 27)
    assert len(clips) == 2 + 1 + 1          # 54 frames -> 2 clips, 30 -> 1, 20 -> resampled
    assert clips.keypoints.shape == (4, 27, 17, 3) and np.all(clips.keypoints[..., 2] == 1.0)
    assert np.allclose(clips.targets[..., 0, :], 0.0)                       # root-relative
    first = frames.joint_2d[0]
    assert np.allclose(clips.keypoints[0, 0, :, 0], first[:, 0] / 1312 * 2 - 1, atol=1e-6)
    assert np.allclose(clips.keypoints[0, 0, :, 1], first[:, 1] / 1312 * 2 - 1216 / 1312, atol=1e-6)
    assert list(clips.action) == ["jump", "jump", "run", "throw"]


def test_mm_round_trip_of_the_ground_truth(source_pickle):
    """The targets, taken back to mm with the 2.5D factor, are the file's mm ground truth."""
    clips = make_clips(read_source(source_pickle, "test", evaluation=True), {"outdoors": (1312, 1216)}, 27, 27)
    assert np.abs(clips.to_millimetres(clips.targets) - clips.poses_mm).max() < 1e-2


def test_splits_hold_out_validation_sequences_from_train(source_pickle):
    splits = load_splits(source_pickle, validation_fraction=0.3, seed=3)
    train_sources, val_sources = set(splits.train.source), set(splits.validation.source)
    assert len(val_sources) == 2 and not train_sources & val_sources
    assert set(splits.test.source) == {"S2_jump", "S4_run", "S7_throw"}
    assert splits.test.factor is not None and splits.validation.factor is None
    # the hand-built train sequences S2/S4 belong to the paper's test subjects
    assert any("paper's sportspose test split" in note for note in splits.notes)


def test_published_test_split_ids():
    assert published_test_source("sportspose", "S2_tennis")
    assert published_test_source("sportspose", "subject/S10/jump")
    assert not published_test_source("sportspose", "S1_tennis")
    assert not published_test_source("sportspose", "S20_tennis")
    assert published_test_source("worldpose", "ARG_CRO_221657_track3")
    assert not published_test_source("worldpose", "ARG_CRO_000000")


def _write(tmp_path, data):
    path = tmp_path / "bad.pkl"
    with open(path, "wb") as handle:
        pickle.dump(data, handle)
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s.pop("joint3d_image"), r"\['test'\] lacks the key 'joint3d_image'"),
    (lambda s: s.pop("2.5d_factor"), r"lacks the key '2.5d_factor'"),
    (lambda s: s.update(source=s["source"][:-1]), r"\['source'\] has 29 entries but 'joint_2d' has 30"),
    (lambda s: s.update(joint_2d=s["joint_2d"][:, :16]), r"\['joint_2d'\] has shape \[30, 16, 2\], expected \[N, 17, 2\]"),
    (lambda s: s["joint3d_image"].__setitem__((4, 3, 1), np.nan), r"\['joint3d_image'\] contains NaN or Inf \(first at frame 4\)"),
    (lambda s: s.update(confidence=np.full((30, 17), 1.5, np.float32)), r"'confidence'\] must lie in \[0, 1\]"),
])
def test_malformed_pickles_name_the_key(tmp_path, mutate, message):
    split = authors_split({"S1_a": 30})
    mutate(split)
    with pytest.raises(DataError, match=message):
        read_source(_write(tmp_path, {"test": split}), "test", evaluation=True)


def test_missing_split_truncated_and_foreign_files(tmp_path, source_pickle):
    with pytest.raises(DataError, match="has no 'validation' split"):
        read_source(source_pickle, "validation")
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(source_pickle.read_bytes()[:500])
    with pytest.raises(DataError, match="not a readable pickle"):
        read_source(cut, "train")
    with pytest.raises(DataError, match="must hold a dict of splits"):
        read_source(_write(tmp_path, [1, 2, 3]), "train")
    with pytest.raises(DataError, match="does not exist"):
        read_source(tmp_path / "absent.pkl", "train")


def test_unknown_camera_is_named(source_pickle):
    frames = parse_split({"train": authors_split({"S1_a": 30}, camera="rooftop")}, "train")
    with pytest.raises(DataError, match="no image resolution known for camera\\(s\\) rooftop"):
        make_clips(frames, {"outdoors": (1312, 1216)})
