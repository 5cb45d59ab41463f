import numpy as np
import torch

from kasf.keypoints import skeleton


def test_tables_are_consistent():
    assert len(skeleton.JOINT_NAMES) == len(skeleton.PARENTS) == 17
    assert skeleton.BONE_PROXIMAL == (0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
    assert [len(limb) for limb in skeleton.LIMBS] == [3, 3, 2, 2, 3, 3, 4, 4, 4, 4, 3, 4, 4, 4, 4, 2, 2]
    assert sum(map(len, skeleton.LIMBS)) == 55
    assert skeleton.LIMBS[14] == (11, 12, 4, 5)


def test_adjacency_is_symmetric_skeleton_without_self_loops():
    adj = skeleton.adjacency()
    assert np.array_equal(adj, adj.T)
    assert np.trace(adj) == 0
    assert adj.sum() == 2 * 16
    assert adj[8, 11] == adj[8, 14] == adj[0, 4] == 1  # thorax-shoulders, pelvis-left hip
    assert adj[0, 8] == 0


def test_flip_swaps_sides_and_negates_x():
    poses = np.arange(17 * 3, dtype=np.float32).reshape(17, 3)
    flipped = skeleton.flip(poses)
    assert flipped[1, 0] == -poses[4, 0] and flipped[1, 1] == poses[4, 1]
    assert flipped[14, 2] == poses[11, 2]
    assert flipped[0, 0] == -poses[0, 0]


def test_flip_twice_is_identity_numpy_and_torch():
    poses = np.random.default_rng(0).normal(size=(4, 27, 17, 3)).astype(np.float32)
    assert np.array_equal(skeleton.flip(skeleton.flip(poses)), poses)
    tensor = torch.from_numpy(poses)
    assert torch.equal(skeleton.flip(skeleton.flip(tensor)), tensor)
    assert np.array_equal(poses, tensor.numpy())  # the input is never modified
