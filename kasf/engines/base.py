"""The engine interface every backend implements. Input checking happens here, once, before
any backend code runs, with messages that name the problem."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from ..errors import KasfError
from ..model.kasportsformer import check_keypoints, example_keypoints

if TYPE_CHECKING:
    from .variants import ModelFiles, Variant


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
        keypoints = example_keypoints(batch, self.n_frames)
        for _ in range(iterations):
            self.infer(keypoints)

    def compute_timer(self, batch: int) -> Callable[[], float] | None:
        """A callable that runs the model once on device-resident inputs of this batch size and
        returns the device's compute time in seconds: compute apart from host-device copies. None
        where the backend runs on the CPU, where the two are one."""
        return None

    @classmethod
    @abstractmethod
    def recorded_model(cls, path: Path, config=None) -> tuple[dict, dict]:
        """(model config, source checkpoint) that the file records, read without loading it
        (config: the authors' YAML, for backends that open their checkpoints)."""

    @classmethod
    def variants(cls, files: "ModelFiles") -> list["Variant"]:
        """The runs kasf makes of this backend from one checkpoint on this machine (its exports
        made through files), for `kasf bench --checkpoint` and the demo; none by default."""
        return []

    def reproduction_commands(self, batch: int) -> list[str]:
        """Command lines that check this engine outside kasf (Polygraphy, trtexec); none by default."""
        return []

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


def check_batch_profile(low: int, opt: int, high: int) -> tuple[int, int, int]:
    """A (min, opt, max) batch profile, checked: TensorRT's, and ONNX Runtime's TensorRT provider's."""
    low, opt, high = int(low), int(opt), int(high)
    if not 1 <= low <= opt <= high:
        raise KasfError(f"the batch profile must satisfy 1 <= min <= opt <= max, got min {low}, opt {opt}, max {high}")
    return low, opt, high
