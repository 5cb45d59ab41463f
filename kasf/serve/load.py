"""Load on a running kasf server: N concurrent gRPC clients, each sending one clip per request and
waiting for its answer, bounded in requests and in time. Every answer is compared with the
engine's own output for its clip; the server's batch sizes come from Triton's statistics, read
before and after. `kill_instance` ends a model instance's stub process, to see what clients get."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .server import stub_instances

ATOL = 1e-5          # normalised units: the server batches clips differently from the engine's own run


@dataclass
class LoadLevel:
    clients: int
    sent: int = 0
    failed: int = 0
    mismatched: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    batches: dict[int, int] = field(default_factory=dict)   # server batch size -> executions
    errors: dict[str, int] = field(default_factory=dict)     # what the clients saw -> how many times

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    @property
    def throughput(self) -> float:
        return (self.sent - self.failed) / self.seconds if self.seconds else 0.0

    @property
    def mean_batch(self) -> float:
        executions = sum(self.batches.values())
        return sum(size * count for size, count in self.batches.items()) / executions if executions else 0.0

    def summary(self) -> dict:
        return {"clients": self.clients, "requests": self.sent, "failed": self.failed, "mismatched": self.mismatched,
                "seconds": round(self.seconds, 3), "p50_ms": self.percentile(50), "p99_ms": self.percentile(99),
                "throughput_per_s": self.throughput, "mean_server_batch": self.mean_batch,
                "server_batches": {str(k): v for k, v in sorted(self.batches.items())}, "errors": self.errors}


def batch_counts(url: str, model: str) -> dict[int, int]:
    """Executions per batch size so far, from Triton's statistics."""
    import tritonclient.grpc as grpc

    stats = grpc.InferenceServerClient(url).get_inference_statistics(model).model_stats
    return {int(b.batch_size): int(b.compute_infer.count) for s in stats for b in s.batch_stats}


def batches_since(url: str, model: str, before: dict[int, int], answered: int, settle_s: float = 3.0) -> dict:
    """Executions per batch size since `before`. Triton counts an execution a moment after its
    responses go out, so this waits (at most settle_s) for the clips counted to reach `answered`."""
    deadline = time.monotonic() + settle_s
    while True:
        batches = {size: count - before.get(size, 0) for size, count in batch_counts(url, model).items()
                   if count > before.get(size, 0)}
        if sum(size * count for size, count in batches.items()) >= answered or time.monotonic() > deadline:
            return batches
        time.sleep(0.05)


def _request(grpc, clip: np.ndarray):
    request = grpc.InferInput("keypoints_2d", [1, *clip.shape], "FP32")
    request.set_data_from_numpy(clip[None])
    return [request]


def run_level(url: str, model: str, clips: np.ndarray, expected: np.ndarray, clients: int, requests: int,
              seconds: float, on_request=None) -> LoadLevel:
    """`clients` threads share `requests` requests (clip i % len(clips)) until they are sent or
    `seconds` pass. on_request(n) is called with each request's number, before it is sent."""
    import tritonclient.grpc as grpc

    level, lock, counter = LoadLevel(clients), threading.Lock(), iter(range(requests))
    before = batch_counts(url, model)
    deadline = time.monotonic() + seconds

    def client():
        connection = grpc.InferenceServerClient(url)
        while time.monotonic() < deadline:
            with lock:
                number = next(counter, None)
            if number is None:
                return
            if on_request is not None:
                on_request(number)
            start = time.perf_counter()
            try:
                poses = connection.infer(model, _request(grpc, clips[number % len(clips)])).as_numpy("poses_3d")[0]
                outcome = None if np.allclose(poses, expected[number % len(clips)], atol=ATOL) else "mismatch"
            except Exception as err:     # what a client sees: recorded, not raised
                outcome = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
            with lock:
                level.sent += 1
                if outcome is None:
                    level.latencies_ms.append((time.perf_counter() - start) * 1e3)
                elif outcome == "mismatch":
                    level.mismatched += 1
                else:
                    level.failed += 1
                    level.errors[outcome] = level.errors.get(outcome, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    level.seconds = time.perf_counter() - started
    try:
        level.batches = batches_since(url, model, before, level.sent - level.failed)
    except Exception as err:            # the server is gone: no statistics
        level.errors[f"statistics: {err}"] = 1
    return level


def kill_instance(model: str) -> str | None:
    """SIGKILL the stub of the model's first instance (of any server here); the instance killed."""
    stubs = stub_instances([model])
    if not stubs:
        return None
    name = min(stubs)
    os.kill(stubs[name], signal.SIGKILL)
    return name
