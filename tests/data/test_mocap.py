import json
import shutil

import numpy as np
import pytest

from kasf.data import mocap
from kasf.errors import DataError
from kasf.keypoints.skeleton import BONE_DISTAL, BONE_PROXIMAL, JOINT_NAMES

WIDTH, HEIGHT = mocap.RESOLUTION
PELVIS, RIGHT_HIP, RIGHT_KNEE, RIGHT_ANKLE = 0, 1, 2, 3
LEFT_HIP, LEFT_KNEE, LEFT_ANKLE = 4, 5, 6
THORAX, NOSE, HEAD = 8, 9, 10
LEFT_SHOULDER, LEFT_ELBOW, RIGHT_SHOULDER, RIGHT_ELBOW = 11, 12, 14, 15
UP = np.array([0.0, 1.0, 0.0])


@pytest.fixture(scope="module")
def motion_dir():
    return mocap.find_motion_dir()


@pytest.fixture(scope="module")
def default_source():
    return mocap.build_mocap_source()


@pytest.fixture
def user_dir(tmp_path, motion_dir):
    """A directory of its own with two motions and the humanoid beside them."""
    for motion in ("walk", "run"):
        shutil.copy(motion_dir / f"humanoid3d_{motion}.txt", tmp_path)
    shutil.copy(motion_dir.parent.parent / "humanoid" / "humanoid.urdf", tmp_path)
    return tmp_path


def bone_lengths(joints):
    return np.linalg.norm(joints[..., BONE_DISTAL, :] - joints[..., BONE_PROXIMAL, :], axis=-1)


def test_every_motion_loads_as_a_rigid_skeleton_of_human_size(motion_dir):
    assert len(mocap.MOTIONS) == 15
    for motion in mocap.MOTIONS:
        joints = mocap.load_motion(motion_dir / f"humanoid3d_{motion}.txt")
        assert joints.shape[1:] == (17, 3) and len(joints) >= 24, motion
        assert np.isfinite(joints).all(), motion
        lengths = bone_lengths(joints)
        assert lengths.std(axis=0).max() < 1e-6, motion
        bone = {JOINT_NAMES[distal]: length for distal, length in zip(BONE_DISTAL, lengths[0])}
        for side in ("left", "right"):
            assert bone[f"{side}_knee"] == pytest.approx(0.42, abs=0.02)     # thigh
            assert bone[f"{side}_ankle"] == pytest.approx(0.41, abs=0.02)    # shin
            assert bone[f"{side}_elbow"] == pytest.approx(0.27, abs=0.02)    # upper arm
            assert bone[f"{side}_wrist"] == pytest.approx(0.26, abs=0.02)    # forearm


def test_walk_stands_upright_with_left_on_the_left(motion_dir):
    joints = mocap.load_motion(motion_dir / "humanoid3d_walk.txt")
    travel = joints[-1, PELVIS] - joints[0, PELVIS]
    forward = travel * [1, 0, 1] / np.linalg.norm(travel * [1, 0, 1])
    assert forward[0] > 0.99  # DeepMimic's walk heads along +x
    left = np.cross(UP, forward)
    first = joints[0]
    heights = first[[HEAD, NOSE, THORAX, PELVIS, LEFT_KNEE, LEFT_ANKLE], 1]
    assert (np.diff(heights) < 0).all()
    assert first[HEAD, 1] == pytest.approx(1.58, abs=0.1)
    for left_joint, right_joint in ((LEFT_HIP, RIGHT_HIP), (LEFT_SHOULDER, RIGHT_SHOULDER), (LEFT_ELBOW, RIGHT_ELBOW)):
        assert np.dot(first[left_joint] - first[right_joint], left) > 0.1, JOINT_NAMES[left_joint]
    assert np.dot(first[NOSE] - first[THORAX], forward) > 0.03


def test_motions_are_resampled_to_the_requested_rate(motion_dir):
    path = motion_dir / "humanoid3d_walk.txt"
    durations = np.array(json.loads(path.read_text())["Frames"])[:, 0]
    span = durations[:-1].sum()
    at_30 = mocap.load_motion(path)
    at_60 = mocap.load_motion(path, fps=60)
    assert len(at_30) == int(np.floor(span * 30 + 1e-2)) + 1
    assert len(at_60) == int(np.floor(span * 60 + 1e-2)) + 1
    np.testing.assert_allclose(at_60[::2][:len(at_30)], at_30, atol=1e-9)
    np.testing.assert_allclose(bone_lengths(at_60).std(axis=0), 0, atol=1e-6)


def test_projection_follows_the_authors_25d_protocol(default_source):
    assert set(default_source) == {"train", "validation", "test"}
    for split in default_source.values():
        assert set(split) == {"joint_2d", "joint3d_image", "2.5d_factor", "joints_2.5d_image", "source",
                              "camera_name", "action"}
        image, factor = split["joint3d_image"], split["2.5d_factor"]
        assert image.dtype == split["joint_2d"].dtype == factor.dtype == np.float32
        np.testing.assert_array_equal(split["joint_2d"], image[..., :2])
        np.testing.assert_allclose(split["joints_2.5d_image"], image * factor[:, None, None], rtol=1e-6)
        assert (image[:, 0, 2] == 0).all()
        assert (factor > 0).all()
        pixels = split["joint_2d"]
        assert (pixels[..., 0] > 0).all() and (pixels[..., 0] < WIDTH).all()
        assert (pixels[..., 1] > 0).all() and (pixels[..., 1] < HEIGHT).all()
        assert (split["camera_name"] == "mocap").all()
        assert all(source.startswith(action + "/cam") for source, action in zip(split["source"], split["action"]))
        assert len(np.unique(split["source"])) == mocap.DEFAULT_CAMERAS * len(np.unique(split["action"]))
    walking = default_source["train"]["action"] == "walk"
    upright = default_source["train"]["joint_2d"][walking]
    assert (upright[:, HEAD, 1] < upright[:, THORAX, 1]).all()  # image v grows downwards
    assert (upright[:, THORAX, 1] < upright[:, PELVIS, 1]).all()


def test_cameras_do_not_mirror_the_subject(default_source, motion_dir):
    def handedness(joints):
        lateral = joints[..., LEFT_SHOULDER, :] - joints[..., RIGHT_SHOULDER, :]
        return np.sign(np.einsum("...i,...i", lateral, np.cross(joints[..., HEAD, :] - joints[..., THORAX, :],
                                                                 joints[..., NOSE, :] - joints[..., THORAX, :])))

    test = default_source["test"]
    for motion in mocap.DEFAULT_SPLIT["test"]:
        world = handedness(mocap.load_motion(motion_dir / f"humanoid3d_{motion}.txt"))
        for camera in range(8):
            frames = test["source"] == f"{motion}/cam{camera}"
            np.testing.assert_array_equal(handedness(test["joints_2.5d_image"][frames].astype(np.float64)), world)


def test_splits_hold_disjoint_motions_and_sequences(default_source):
    listed = [motion for motions in mocap.DEFAULT_SPLIT.values() for motion in motions]
    assert sorted(listed) == sorted(mocap.MOTIONS)
    assert mocap.DEFAULT_SPLIT["test"] == ("run", "spinkick", "dance_b", "getup_faceup")
    for name, motions in mocap.DEFAULT_SPLIT.items():
        assert set(default_source[name]["action"]) == set(motions)
    sources = [set(split["source"]) for split in default_source.values()]
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])


def test_cameras_are_deterministic_per_seed():
    first = mocap.build_mocap_source(cameras_per_motion=2, seed=3)
    again = mocap.build_mocap_source(cameras_per_motion=2, seed=3)
    other = mocap.build_mocap_source(cameras_per_motion=2, seed=4)
    for name in first:
        for key in first[name]:
            np.testing.assert_array_equal(first[name][key], again[name][key])
        assert np.abs(first[name]["joint_2d"] - other[name]["joint_2d"]).mean() > 10


def test_detector_noise_moves_2d_and_adds_confidence():
    clean = mocap.build_mocap_source(cameras_per_motion=2)
    noisy = mocap.build_mocap_source(cameras_per_motion=2, detector_errors=mocap.DetectorErrors(noise_px=6.0))
    for name in clean:
        assert "confidence" not in clean[name]
        split = noisy[name]
        np.testing.assert_array_equal(split["joint3d_image"], clean[name]["joint3d_image"])
        confidence = split["confidence"]
        assert confidence.shape == split["joint_2d"].shape[:2] and confidence.dtype == np.float32
        assert (confidence > 0).all() and (confidence <= 1).all()
        error = np.linalg.norm(split["joint_2d"] - split["joint3d_image"][..., :2], axis=-1)
        assert 0.5 < np.median(error) < 10
        assert error.max() > 5 * np.median(error)  # rare outliers
        order = np.argsort(error, axis=1)
        by_error = np.take_along_axis(confidence, order, axis=1)
        assert (np.diff(by_error, axis=1) <= 1e-4).all()  # float32 pixels blur near-ties


def test_cache_is_reused_and_a_corrupt_file_is_rebuilt(tmp_path):
    options = {"cameras_per_motion": 1, "cache_dir": tmp_path}
    built = mocap.load_mocap_source(**options)
    [cache] = list(tmp_path.glob("*.npz"))
    written = cache.stat().st_mtime_ns
    again = mocap.load_mocap_source(**options)
    assert cache.stat().st_mtime_ns == written
    np.testing.assert_array_equal(again["test"]["joint_2d"], built["test"]["joint_2d"])

    marked = {f"{name}/{key}": value for name, split in built.items() for key, value in split.items()}
    marked["test/joint_2d"] = marked["test/joint_2d"] + 1
    np.savez(cache, **marked)
    reused = mocap.load_mocap_source(**options)
    np.testing.assert_array_equal(reused["test"]["joint_2d"], built["test"]["joint_2d"] + 1)

    cache.write_bytes(b"PK\x03\x04 truncated")
    rebuilt = mocap.load_mocap_source(**options)
    np.testing.assert_array_equal(rebuilt["test"]["joint_2d"], built["test"]["joint_2d"])
    with np.load(cache) as archive:
        np.testing.assert_array_equal(archive["test/joint_2d"], built["test"]["joint_2d"])

    mocap.load_mocap_source(seed=1, **options)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_cache_dir_defaults_to_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KASF_CACHE_DIR", str(tmp_path))
    assert mocap.default_cache_dir() == tmp_path
    mocap.load_mocap_source(cameras_per_motion=1)
    assert len(list(tmp_path.glob("mocap-*.npz"))) == 1


@pytest.mark.parametrize("content, problem", [
    ("{\"Frames\": [[0.1, 0.2", "not valid JSON"),
    (json.dumps({"Loop": "none", "Frames": [[0.1] * 43, [0.1] * 43]}), "43 columns, expected 44"),
    (json.dumps({"Loop": "none", "Frames": []}), "no frames"),
    (json.dumps({"Loop": "none", "Frames": [[0.1] * 44, [0.1] * 40]}), "list of 44 numbers"),
    (json.dumps({"Loop": "none"}), "'Frames' list"),
])
def test_malformed_motion_file_names_the_problem(user_dir, content, problem):
    path = user_dir / "humanoid3d_broken.txt"
    path.write_text(content)
    with pytest.raises(DataError, match=problem) as error:
        mocap.load_motion(path)
    assert "humanoid3d_broken.txt" in str(error.value)
    with pytest.raises(DataError, match=problem):
        mocap.build_mocap_source(user_dir, {"train": ("walk",), "test": ("broken",)})


def test_missing_inputs_are_reported(tmp_path, user_dir):
    with pytest.raises(DataError, match="does not exist"):
        mocap.find_motion_dir(tmp_path / "nowhere")
    with pytest.raises(DataError, match="does not exist"):
        mocap.load_mocap_source(tmp_path / "nowhere", cache_dir=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no humanoid3d_"):
        mocap.find_motion_dir(tmp_path / "empty")
    with pytest.raises(DataError, match="'jump'.*does not exist"):
        mocap.build_mocap_source(user_dir, {"train": ("walk",), "test": ("jump",)})
    with pytest.raises(DataError, match="both split"):
        mocap.build_mocap_source(user_dir, {"train": ("walk", "run"), "test": ("run",)})
    (user_dir / "humanoid.urdf").unlink()
    with pytest.raises(DataError, match="humanoid.urdf"):
        mocap.build_mocap_source(user_dir, {"train": ("walk",), "test": ("run",)})


def test_a_users_directory_works_and_its_edits_reach_the_cache(user_dir, motion_dir, tmp_path_factory):
    split = {"train": ("walk",), "test": ("run",)}
    own = mocap.build_mocap_source(user_dir, split, cameras_per_motion=2)
    installed = mocap.build_mocap_source(motion_dir, split, cameras_per_motion=2)
    assert set(own) == {"train", "test"}
    assert sorted(set(own["test"]["source"])) == ["run/cam0", "run/cam1"]
    for name in split:
        np.testing.assert_array_equal(own[name]["joint3d_image"], installed[name]["joint3d_image"])

    cache_dir = tmp_path_factory.mktemp("cache")
    before = mocap.load_mocap_source(user_dir, split, cameras_per_motion=2, cache_dir=cache_dir)
    walk = user_dir / "humanoid3d_walk.txt"
    motion = json.loads(walk.read_text())
    motion["Frames"] = motion["Frames"][:20]
    walk.write_text(json.dumps(motion))
    after = mocap.load_mocap_source(user_dir, split, cameras_per_motion=2, cache_dir=cache_dir)
    assert len(after["train"]["source"]) < len(before["train"]["source"])
    assert len(list(cache_dir.glob("*.npz"))) == 2


def test_an_unwritable_cache_only_warns(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory would go")
    with pytest.warns(UserWarning, match="could not cache"):
        source = mocap.load_mocap_source(cameras_per_motion=1, cache_dir=blocker / "cache")
    assert len(source["test"]["source"]) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
