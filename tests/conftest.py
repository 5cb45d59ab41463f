from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
AUTHORS_CHECKPOINT = FIXTURES / "official_tiny.pth"
AUTHORS_YAML = FIXTURES / "official_tiny.yaml"
AUTHORS_IO = FIXTURES / "official_tiny_io.npz"
PAPER_KEYS = FIXTURES / "official_paper_state_dict.tsv"
# Real OpenPose output (Pose2Sim's demo, BSD-3): the demo's sample, shipped in the package, and a
# multi-person folder only the tests use.
SAMPLE_DETECTIONS = Path(__file__).parents[1] / "kasf" / "demo" / "samples" / "balancing_cam01"
SAMPLE_VIDEO = SAMPLE_DETECTIONS.with_suffix(".mp4")
PARTICIPANTS = FIXTURES / "detectors" / "pose2sim" / "participants12_cam01"


@pytest.fixture
def clip() -> torch.Tensor:
    """Two random 27-frame clips of normalised keypoints with confidences in (0, 1]."""
    generator = torch.Generator().manual_seed(0)
    keypoints = torch.rand(2, 27, 17, 3, generator=generator) * 2 - 1
    keypoints[..., 2] = keypoints[..., 2].abs() + 0.01
    return keypoints


@pytest.fixture
def golden() -> dict[str, np.ndarray]:
    return dict(np.load(AUTHORS_IO))


def authors_split(lengths: dict[str, int], seed: int = 0, evaluation: bool = True, camera: str | None = "outdoors",
                  confidence: bool = False) -> dict[str, np.ndarray]:
    """One split in the authors' source format: smooth random 3D motion seen by a pinhole camera."""
    rng = np.random.default_rng(seed)
    sources = np.concatenate([[name] * n for name, n in lengths.items()])
    n = len(sources)
    rest = rng.normal(scale=0.3, size=(17, 3))
    drift = np.cumsum(rng.normal(scale=0.01, size=(n, 17, 3)), axis=0)
    world = rest + drift + np.array([0.0, 0.0, 5.0])              # metres, 5 m in front of the camera
    focal, centre = 1000.0, np.array([656.0, 608.0])
    uv = focal * world[..., :2] / world[..., 2:] + centre
    depth = (world[..., 2] - world[:, :1, 2]) * focal / world[:, :1, 2]
    joint3d_image = np.concatenate([uv, depth[..., None]], axis=-1).astype(np.float32)
    factor = (world[:, 0, 2] * 1000.0 / focal).astype(np.float32)
    split = {"joint_2d": uv.astype(np.float32), "joint3d_image": joint3d_image, "source": sources}
    if camera is not None:
        split["camera_name"] = np.array([camera] * n)
    if confidence:
        split["confidence"] = rng.uniform(0.2, 1.0, size=(n, 17)).astype(np.float32)
    if evaluation:
        split["action"] = np.array([name.split("_")[-1] for name in sources])
        split["2.5d_factor"] = factor
        split["joints_2.5d_image"] = joint3d_image * factor[:, None, None]
    return split


@pytest.fixture
def source_pickle(tmp_path):
    """A small SportsPose-format pickle: 6 training sequences, 3 test sequences."""
    import pickle

    data = {
        "train": authors_split({f"S{i}_train_{a}": 60 + 7 * i for i, a in enumerate("abcdef", start=1)},
                               seed=1, evaluation=False),
        "test": authors_split({"S2_jump": 54, "S4_run": 30, "S7_throw": 20}, seed=2),
    }
    path = tmp_path / "source.pkl"
    with open(path, "wb") as handle:
        pickle.dump(data, handle)
    return path


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Derived datasets go to a per-session cache, never the user's ~/.cache."""
    import os

    os.environ["KASF_CACHE_DIR"] = str(tmp_path_factory.mktemp("kasf-cache"))


@pytest.fixture(scope="session")
def authors_checkpoint():
    """The authors'-format fixture checkpoint, read with its YAML."""
    from kasf.model.checkpoint import read_checkpoint

    return read_checkpoint(AUTHORS_CHECKPOINT, AUTHORS_YAML)


@pytest.fixture(scope="session")
def tiny_exports(authors_checkpoint, tmp_path_factory) -> dict:
    """The fixture checkpoint exported once per precision (FP32 and strongly typed FP16 ONNX), and
    in FP32 with the ONNX Attention op (opset 23, ONNX Runtime's fastest form)."""
    from kasf.export.onnx import export_onnx

    folder = tmp_path_factory.mktemp("onnx")
    exports = {precision: export_onnx(authors_checkpoint, folder / f"tiny_{precision}.onnx", fp16=precision == "fp16",
                                      max_batch=64)
               for precision in ("fp32", "fp16")}
    exports["attention_op"] = export_onnx(authors_checkpoint, folder / "tiny_attention_op.onnx", opset=23,
                                          max_batch=64, use_sdpa=True)
    return exports


@pytest.fixture(scope="session")
def tiny_onnx(tiny_exports) -> Path:
    return tiny_exports["fp32"].path
