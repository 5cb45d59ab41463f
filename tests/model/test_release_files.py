"""Files written by an earlier release keep loading and give the same outputs.

tests/fixtures/release_98bfa85.{pt,onnx} were written by kasf at commit 98bfa85 (the release before
the package layout of issue 15): a tiny checkpoint (torch.manual_seed(15), preset tiny), its FP32
ONNX export (max batch 8), and release_98bfa85_io.npz with fixed keypoints and both files' outputs
on them, computed by that release.
"""

import numpy as np
import torch

from conftest import FIXTURES
from kasf import load_model
from kasf.engines import load_engine, recorded_model
from kasf.export.artifact import read_metadata
from kasf.model import read_checkpoint

CHECKPOINT = FIXTURES / "release_98bfa85.pt"
GRAPH = FIXTURES / "release_98bfa85.onnx"
IO = FIXTURES / "release_98bfa85_io.npz"


def test_a_checkpoint_of_the_previous_release_gives_its_outputs():
    io = np.load(IO)
    model = load_model(CHECKPOINT)
    with torch.inference_mode():
        poses = model(torch.from_numpy(io["keypoints"])).numpy()
    np.testing.assert_allclose(poses, io["torch_poses"], atol=1e-5)
    assert read_checkpoint(CHECKPOINT).config.to_dict()["dim_feat"] == 32


def test_an_onnx_graph_of_the_previous_release_gives_its_outputs():
    io = np.load(IO)
    with load_engine(GRAPH, threads=1) as engine:
        poses = engine.infer(io["keypoints"])
    np.testing.assert_allclose(poses, io["onnx_poses"], atol=1e-5)
    assert read_metadata(GRAPH)["kasf_metadata_version"] == 1


def test_both_files_record_the_same_model():
    graph_config, _ = recorded_model(GRAPH)
    checkpoint_config, _ = recorded_model(CHECKPOINT)
    assert graph_config == checkpoint_config
