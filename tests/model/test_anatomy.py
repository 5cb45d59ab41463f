import torch

from kasf.model.anatomy import LimbFus, bone_features
from kasf.keypoints.skeleton import LIMBS


def _t_pose() -> torch.Tensor:
    joints = torch.zeros(1, 1, 17, 3)
    joints[..., 2] = 0.9
    for j in range(1, 17):
        joints[0, 0, j, 0] = float(j)  # every joint at (j, 0)
    return joints


def test_bone_vectors_point_to_the_root_with_lengths():
    joints = _t_pose()
    bones = bone_features(joints)[0, 0]
    assert bones.shape == (17, 3)
    # bone 0 joins pelvis (0, 0) and right hip (1, 0): vector (0 - 1, 0), length 1
    assert torch.allclose(bones[0], torch.tensor([-1.0, 0.0, 1.0]))
    # bone 10 joins thorax (8, 0) and left shoulder (11, 0): vector (-3, 0), length 3
    assert torch.allclose(bones[10], torch.tensor([-1.0, 0.0, 3.0]))


def test_zero_length_bone_is_divided_by_one_and_ultra_bone_is_plain_mean():
    joints = _t_pose()
    joints[0, 0, 2, :2] = joints[0, 0, 1, :2]  # right knee on the right hip: bone 1 has length 0
    bones = bone_features(joints)[0, 0]
    assert torch.allclose(bones[1], torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(bones[16, :2], bones[:16, :2].mean(dim=0))
    assert torch.allclose(bones[16, 2], bones[:16, 2].mean())
    assert bones[16, :2].norm() < 1.0  # not renormalised


def test_bone_features_ignore_confidence():
    joints = _t_pose()
    other = joints.clone()
    other[..., 2] = 0.1
    assert torch.equal(bone_features(joints), bone_features(other))


def test_limb_fus_has_the_published_parameter_count_and_shape():
    limb_fus = LimbFus()
    assert sum(p.numel() for p in limb_fus.parameters()) == 4323
    assert limb_fus(torch.randn(2, 27, 17, 3)).shape == (2, 27, 17, 3)


def test_limb_composer_gathers_members_per_channel():
    limb_fus = LimbFus(hidden_dim=1)
    for composer in limb_fus.limbs:
        for channel, mlp in enumerate(composer.channel_mlps):
            # identity-like MLP: sum of members (GELU of positive values ~ value for large inputs)
            torch.nn.init.ones_(mlp.fc1.weight)
            torch.nn.init.zeros_(mlp.fc1.bias)
            torch.nn.init.ones_(mlp.fc2.weight)
            torch.nn.init.zeros_(mlp.fc2.bias)
    tokens = torch.zeros(1, 1, 17, 3)
    tokens[0, 0, :, 0] = 100.0 * torch.arange(17)
    tokens[0, 0, :, 1] = 1000.0
    out = limb_fus(tokens)[0, 0]
    for index, members in enumerate(LIMBS):
        assert torch.isclose(out[index, 0], torch.tensor(100.0 * sum(members)), rtol=1e-5)
        assert torch.isclose(out[index, 1], torch.tensor(1000.0 * len(members)), rtol=1e-5)
        assert out[index, 2].abs() < 1e-6
