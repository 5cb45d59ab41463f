import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from kasf.train import metrics
from kasf.errors import InputError
from kasf.model.normalization import normalize_screen, to_millimetres


@pytest.fixture
def poses() -> np.ndarray:
    return np.random.default_rng(1).normal(scale=300.0, size=(4, 27, 17, 3))


def test_mpjpe_of_a_hand_computed_case():
    target = np.zeros((1, 17, 3))
    predicted = target.copy()
    predicted[0, 0] = (3.0, 4.0, 0.0)  # one joint 5 mm off
    assert metrics.mpjpe(predicted, target)[0] == pytest.approx(5.0 / 17)
    assert metrics.joint_errors(predicted, target)[0, 0] == 5.0


def test_rigid_rotation_gives_zero_p_mpjpe_but_positive_mpjpe(poses):
    rotation = Rotation.from_euler("xyz", (30, -50, 70), degrees=True).as_matrix()
    moved = poses @ rotation.T + np.array([100.0, -20.0, 5.0])
    assert metrics.p_mpjpe(moved, poses).max() < 1e-8
    assert metrics.mpjpe(moved, poses).min() > 10.0


def test_scaled_pose_is_fully_corrected_by_procrustes(poses):
    assert metrics.p_mpjpe(1.7 * poses, poses).max() < 1e-8
    assert metrics.mpjpe(1.7 * poses, poses).mean() > 100.0


def test_reflection_is_not_undone_by_procrustes(poses):
    mirrored = poses * np.array([-1.0, 1.0, 1.0])
    assert metrics.p_mpjpe(mirrored, poses).min() > 1.0
    # without the reflection fix an improper rotation would align it perfectly
    aligned = metrics.procrustes_align(mirrored, poses)
    assert not np.allclose(aligned, poses, atol=1e-6)


def test_procrustes_minimises_squared_error_among_similarity_transforms(poses):
    noisy = poses + np.random.default_rng(2).normal(scale=20.0, size=poses.shape)
    aligned = metrics.procrustes_align(noisy, poses)
    rotation = Rotation.from_euler("z", 3, degrees=True).as_matrix()
    centre = poses.mean(axis=-2, keepdims=True)
    perturbed = (aligned - centre) @ rotation.T * 1.01 + centre
    for other in (noisy, perturbed):
        assert np.all(((aligned - poses) ** 2).sum(axis=(-2, -1)) <= ((other - poses) ** 2).sum(axis=(-2, -1)))


def test_acceleration_error_is_zero_for_constant_velocity_offsets(poses):
    drift = np.arange(27)[None, :, None, None] * np.array([1.0, 2.0, 3.0])
    assert metrics.acceleration_error(poses + drift, poses).max() < 1e-9
    bumped = poses.copy()
    bumped[:, 10, 0, 0] += 17.0  # one joint, one frame: second differences 17, -34, 17 around it
    accel = metrics.acceleration_error(bumped, poses)
    assert accel.shape == (4, 25)
    assert accel[0, 8] == pytest.approx(17.0 / 17) and accel[0, 9] == pytest.approx(34.0 / 17)


def test_action_balanced_mean_weighs_actions_not_clips():
    means, balanced = metrics.per_action_means([10.0, 10.0, 10.0, 40.0], ["run", "run", "run", "kick"])
    assert means == {"kick": 40.0, "run": 10.0}
    assert balanced == 25.0


def test_evaluate_report(poses):
    noisy = poses.copy()
    noisy[..., 3, :] += (0.0, 0.0, 12.0)  # right ankle 12 mm off in every frame
    report = metrics.error_tables(noisy, poses, ["a", "a", "b", "b"])
    assert report["mpjpe"] == pytest.approx(12.0 / 17)
    assert report["per_joint"]["right_ankle"] == pytest.approx(12.0)
    assert report["lower_body"] == pytest.approx(12.0 / 6) and report["upper_body"] == 0.0
    assert report["action_mean_mpjpe"] == pytest.approx(12.0 / 17)
    assert set(report["per_action_p_mpjpe"]) == {"a", "b"}


def test_shape_mismatch_is_named():
    with pytest.raises(InputError, match="must both be"):
        metrics.mpjpe(np.zeros((2, 17, 3)), np.zeros((2, 16, 3)))
    with pytest.raises(InputError, match="3 values but 2 action labels"):
        metrics.per_action_means([1, 2, 3], ["a", "b"])


def test_screen_normalisation_and_millimetres_round_trip():
    width, height = 1920.0, 1080.0
    pixels = np.array([[0.0, 0.0], [1920.0, 1080.0], [960.0, 540.0]])
    normalised = normalize_screen(pixels, width, height)
    assert np.allclose(normalised, [[-1.0, -1080 / 1920], [1.0, 1080 / 1920], [0.0, 0.0]])
    # a pose 100 px to the right of the root, 50 px deeper, at 2 mm per pixel
    pose = np.zeros((17, 3))
    pose[5] = (100 * 2 / width, 0.0, 50 * 2 / width)
    mm = to_millimetres(pose, width, height, 2.0)
    assert np.allclose(mm[5], (200.0, 0.0, 100.0)) and np.allclose(mm[0], 0.0)
    with pytest.raises(InputError, match="positive"):
        normalize_screen(pixels, 0, height)
