import pytest
import torch

from kasf.train.augment import random_flip
from kasf.train.losses import LiftingLoss, LossWeights, mpjpe, n_mpjpe, velocity_error
from kasf.keypoints.skeleton import flip


def test_mpjpe_closed_form():
    target = torch.zeros(1, 2, 17, 3)
    predicted = target.clone()
    predicted[..., 0] = 3.0
    predicted[..., 1] = 4.0
    assert mpjpe(predicted, target).item() == pytest.approx(5.0)


def test_n_mpjpe_removes_a_global_scale():
    target = torch.randn(2, 27, 17, 3)
    assert n_mpjpe(2.5 * target, target).item() == pytest.approx(0.0, abs=1e-6)
    assert mpjpe(2.5 * target, target).item() > 0.5


def test_n_mpjpe_closed_form_scale():
    target = torch.zeros(1, 1, 17, 3)
    target[..., 0] = 1.0            # every joint at (1, 0, 0)
    predicted = 2.0 * target
    predicted[..., 0, 1] = 1.0      # joint 0 at (2, 1, 0), the rest at (2, 0, 0)
    scale = 34.0 / 69.0             # sum<p, g> / sum|p|^2
    expected = (16 * abs(1 - 2 * scale) + ((1 - 2 * scale) ** 2 + scale ** 2) ** 0.5) / 17
    assert n_mpjpe(predicted, target).item() == pytest.approx(expected, rel=1e-6)


def test_velocity_error_ignores_constant_offsets_and_sees_motion():
    target = torch.randn(2, 27, 17, 3)
    assert velocity_error(target + 3.0, target).item() == pytest.approx(0.0, abs=1e-6)
    moving = target.clone()
    moving[:, 1:] += 1.0  # a unit step along x, y and z between frames 0 and 1
    assert velocity_error(moving, target).item() == pytest.approx(3 ** 0.5 / 26, rel=1e-5)
    assert velocity_error(target[:, :1], target[:, :1]).item() == 0.0


def test_lifting_loss_uses_the_paper_weights():
    target = torch.randn(2, 27, 17, 3)
    predicted = target + 0.1 * torch.randn_like(target)
    total, parts = LiftingLoss()(predicted, target)
    assert LossWeights() == LossWeights(1.0, 0.5, 20.0)
    expected = parts["mpjpe"] + 0.5 * parts["n_mpjpe"] + 20.0 * parts["velocity"]
    assert total.item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="differ in shape"):
        LiftingLoss()(predicted[:, :5], target)


def test_random_flip_mirrors_input_and_label_together():
    keypoints, poses = torch.randn(64, 27, 17, 3), torch.randn(64, 27, 17, 3)
    flipped_kp, flipped_poses = random_flip(keypoints, poses, generator=torch.Generator().manual_seed(0))
    chosen = [i for i in range(64) if not torch.equal(flipped_kp[i], keypoints[i])]
    assert 10 < len(chosen) < 54
    for i in range(64):
        was_flipped = i in chosen
        assert torch.equal(flipped_kp[i], flip(keypoints[i]) if was_flipped else keypoints[i])
        assert torch.equal(flipped_poses[i], flip(poses[i]) if was_flipped else poses[i])
    assert random_flip(keypoints, poses, prob=0.0)[0].equal(keypoints)


def test_focus_weights_count_the_returned_positions_more():
    from kasf.errors import ConfigError
    from kasf.train.losses import focus_weights

    weights = focus_weights(27, 0, 1, 4.0)          # causal: the newest frame
    assert weights.mean().item() == pytest.approx(1.0) and weights[-1] == pytest.approx(4 * weights[0])
    assert (weights[:-1] == weights[0]).all()
    strided = focus_weights(27, 7, 14, 2.0)         # positions 6..19
    assert (strided[6:20] > strided[0]).all() and (strided[:6] == strided[0]).all() and (strided[20:] == strided[0]).all()
    with pytest.raises(ConfigError, match="lag \\+ stride <= 27"):
        focus_weights(27, 20, 8, 4.0)


def test_a_focused_loss_weights_the_frames_it_names():
    from kasf.train.losses import focus_weights

    target = torch.rand(2, 27, 17, 3, generator=torch.Generator().manual_seed(0))
    predicted = target.clone()
    predicted[:, -1] += 1.0                          # only the newest frame is wrong, by 1 per axis
    weights = focus_weights(27, 0, 1, 4.0)
    assert mpjpe(predicted, target).item() == pytest.approx(3 ** 0.5 / 27)
    assert mpjpe(predicted, target, weights).item() == pytest.approx(3 ** 0.5 * 4 / 30)
    assert mpjpe(predicted, target, torch.ones(27)).item() == pytest.approx(mpjpe(predicted, target).item())
    plain, _ = LiftingLoss()(predicted, target)
    focused, parts = LiftingLoss(frame_weights=weights)(predicted, target)
    assert focused > plain and parts["mpjpe"].item() == pytest.approx(3 ** 0.5 * 4 / 30)
