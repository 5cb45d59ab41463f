"""The engine interface every backend implements. Input checking happens here, once, before
any backend code runs, with messages that name the problem."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch

from ..model import check_keypoints


class Engine(ABC):
    """A loaded model that maps keypoints [B, T, 17, 3] to poses [B, T, 17, 3] (float32 numpy)."""

    backend: str = ""

    def __init__(self, n_frames: int, precision: str):
        self.n_frames = n_frames
        self.precision = precision

    def infer(self, keypoints: np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(keypoints, np.ndarray):
            if not np.issubdtype(keypoints.dtype, np.floating):
                keypoints = keypoints.astype(np.float32)
            keypoints = torch.from_numpy(np.ascontiguousarray(keypoints, dtype=np.float32))
        check_keypoints(keypoints, self.n_frames)
        return self._infer(keypoints.to(torch.float32).contiguous())

    @abstractmethod
    def _infer(self, keypoints: torch.Tensor) -> np.ndarray:
        """Run checked float32 keypoints through the backend."""

    def warmup(self, iterations: int = 3, batch: int = 1) -> None:
        keypoints = np.zeros((batch, self.n_frames, 17, 3), dtype=np.float32)
        keypoints[..., 2] = 1.0
        for _ in range(iterations):
            self.infer(keypoints)

    def metadata(self) -> dict[str, Any]:
        return {"backend": self.backend, "precision": self.precision, "n_frames": self.n_frames}

    def close(self) -> None:
        """Release the backend's resources."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
