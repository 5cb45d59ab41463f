"""The engine interface every backend implements. Input checking happens here, once, before
any backend code runs, with messages that name the problem."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import numpy as np
import torch

from ..model.kasportsformer import check_keypoints


class Engine(ABC):
    """A loaded model that maps keypoints [B, T, 17, 3] to poses [B, T, 17, 3] (float32 numpy)."""

    backend: str = ""
    device = torch.device("cpu")
    max_batch: int | None = None    # the largest batch the engine takes; None: no limit

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

    def compute_timer(self, batch: int) -> Callable[[], float] | None:
        """A callable that runs the model once on device-resident inputs of this batch size and
        returns the device's compute time in seconds: compute apart from host-device copies. None
        where the backend runs on the CPU, where the two are one."""
        return None

    def metadata(self) -> dict[str, Any]:
        return {"backend": self.backend, "precision": self.precision, "n_frames": self.n_frames}

    def close(self) -> None:
        """Release the backend's resources."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def cuda_event_seconds(work: Callable[[], Any], stream: torch.cuda.Stream | None = None) -> float:
    """Device time of the work queued by `work`, by CUDA events on the stream it is queued on."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record(stream)
    work()
    end.record(stream)
    end.synchronize()
    return start.elapsed_time(end) / 1e3
