from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
AUTHORS_CHECKPOINT = FIXTURES / "official_tiny.pth"
AUTHORS_YAML = FIXTURES / "official_tiny.yaml"
AUTHORS_IO = FIXTURES / "official_tiny_io.npz"
PAPER_KEYS = FIXTURES / "official_paper_state_dict.tsv"


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
