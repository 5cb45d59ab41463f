"""Timing with trtexec's conventions: engines INTERLEAVED, so that drift of the machine (clock boost,
a neighbour's load, thermal state) falls on all of them alike.

Warm-up by time (200 ms), then at least 10 rounds and at least 3 s. Latency min / mean / median /
p90 / p95 / p99 / max in ms, and a warning when the coefficient of variation is over 2.5%. On a GPU
the end-to-end latency (host numpy in, host numpy out) is timed with the device compute time apart
(CUDA events around the compute on device-resident data) and the host-to-device and device-to-host
copies on their own.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from ..engines.base import cuda_event_seconds
from ..errors import KasfError
from ..model import example_keypoints

WARMUP_S, MIN_ITERATIONS, MIN_DURATION_S = 0.2, 10, 3.0     # trtexec's defaults
SETTLE_S = 0.1                                               # idle between two engines' turns
CV_WARNING = 0.025                                           # trtexec warns above 2.5%
PERCENTILES = (90, 95, 99)


def latency_stats(seconds: Sequence[float]) -> dict:
    """trtexec's latency summary of timings in seconds, in ms, with the coefficient of variation."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise KasfError("no timings to summarise")
    mean = float(ms.mean())
    stats = {"iterations": int(ms.size), "min_ms": float(ms.min()), "mean_ms": mean, "median_ms": float(np.median(ms))}
    stats.update({f"p{p}_ms": float(np.percentile(ms, p)) for p in PERCENTILES})
    stats.update(max_ms=float(ms.max()), cv=float(ms.std() / mean) if mean > 0 else 0.0)
    return stats


def stability_warning(label: str, stats: Mapping[str, float], threshold: float = CV_WARNING) -> str | None:
    """trtexec's warning: a coefficient of variation over the threshold makes the figures unreliable."""
    if stats["cv"] <= threshold:
        return None
    return (f"{label}: coefficient of variation {100 * stats['cv']:.1f}% is over {100 * threshold:.1f}%: the machine "
            "was not quiet (other load, frequency scaling); the figures may not be reproducible")


Runner = Callable[[], Mapping[str, float]]


def run_interleaved(runners: Mapping[str, Runner], warmup_s: float = WARMUP_S, min_iterations: int = MIN_ITERATIONS,
                    min_duration_s: float = MIN_DURATION_S,
                    settle_s: float = SETTLE_S) -> tuple[dict[str, dict[str, list[float]]], dict[str, str]]:
    """Round-robin: each round calls every runner once; a runner returns named durations in seconds.
    Between two runners the CPU idles for settle_s, so that the thread pools of the one before
    (ONNX Runtime's and OpenMP's spin after a run) have gone to sleep and take no cores from the next:
    without it, PyTorch eager interleaved with ONNX Runtime measured 3x slower on 2 cores.
    Warm-up rounds for warmup_s (at least one), then timed rounds until at least min_iterations and
    min_duration_s. A runner that raises is dropped from later rounds and reported, never fatal.
    Returns ({runner: {measure: [seconds, ...]}}, {runner: failure})."""
    active, failures = dict(runners), {}
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in runners}

    def one_round(record: bool) -> None:
        for name, run in list(active.items()):
            if len(active) > 1:
                time.sleep(settle_s)
            try:
                measured = run()
            except Exception as err:  # any backend's failure becomes that engine's status
                failures[name] = f"{type(err).__name__}: {err}"
                del active[name]
                continue
            if record:
                for measure, seconds in measured.items():
                    samples[name].setdefault(measure, []).append(seconds)

    started = time.perf_counter()
    while active:
        one_round(record=False)
        if time.perf_counter() - started >= warmup_s:
            break
    rounds, started = 0, time.perf_counter()
    while active and (rounds < min_iterations or time.perf_counter() - started < min_duration_s):
        one_round(record=True)
        rounds += 1
    return samples, failures


def engine_runner(engine, keypoints: np.ndarray) -> Runner:
    """End-to-end latency of infer (numpy in, numpy out); on a GPU also compute and the two copies."""
    def end_to_end() -> float:
        start = time.perf_counter()
        engine.infer(keypoints)
        return time.perf_counter() - start

    device = engine.device
    if device.type != "cuda":
        return lambda: {"latency": end_to_end()}
    engine.infer(keypoints)   # binds the batch's buffers, captures its CUDA graph
    compute = engine.compute_timer(len(keypoints))
    with torch.cuda.device(device):
        host_in = torch.from_numpy(keypoints).pin_memory()
        host_out = torch.empty_like(host_in).pin_memory()
        resident = torch.empty_like(host_in, device=device)

    def run() -> dict[str, float]:
        measured = {"latency": end_to_end(),
                    "h2d": cuda_event_seconds(lambda: resident.copy_(host_in, non_blocking=True)),
                    "d2h": cuda_event_seconds(lambda: host_out.copy_(resident, non_blocking=True))}
        if compute is not None:
            measured["compute"] = compute()
        return measured
    return run


def benchmark_keypoints(batch: int, n_frames: int, seed: int = 0) -> np.ndarray:
    """Random keypoints of the model's input shape, the same for every engine of a run (float32 numpy)."""
    return example_keypoints(batch, n_frames, torch.Generator().manual_seed(seed)).numpy()
