"""`kasf serve`: any kasf engine behind a real Triton Inference Server, started by PyTriton.

The server has two models:

- `<name>`: `keypoints_2d` FP32 [B, 27, 17, 3] in (the engine's normalised screen units), `poses_3d`
  FP32 [B, 27, 17, 3] out, with dynamic batching (preferred batch sizes, queue delay) over N model
  instances, each with an engine of its own;
- `<name>_stream` (kasf.serve.streaming): one frame of one tracked person per request.

Triton itself refuses a request of the wrong shape or dtype, naming the input and what it expects.
NaN and Inf are refused here, naming the request, clip, frame and joint. PyTriton answers a batch
with one result or one error, so a refused request also fails the requests batched with it (they
get the same message); the server stays up. HTTP, gRPC and metrics listen on loopback unless told
otherwise; ready and health are Triton's own /v2/health/ready and /v2/health/live.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..engines.base import Engine
from ..errors import InputError, KasfError
from ..keypoints.skeleton import NUM_JOINTS
from ..stream import MODES
from .environment import prepare_stub_env, require_pytriton, server_environment
from .streaming import STREAM_INPUTS, STREAM_OUTPUTS, StreamEndpoint
from .triton import DEFAULT_NAME, DEFAULT_QUEUE_DELAY_US


@dataclass
class ServeSettings:
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    name: str = DEFAULT_NAME
    instances: int = 1
    max_batch: int = 64
    preferred_batch: Sequence[int] = (8, 16)
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    stream: bool = True
    stream_mode: str = "causal"
    stream_idle_s: float = 60.0
    exit_timeout_s: int = 5
    log_file: Path | None = None
    stub_env: Path | None = None

    def check(self) -> None:
        if self.instances < 1:
            raise KasfError(f"--instances must be at least 1, got {self.instances}")
        if self.max_batch < 1 or any(not 1 <= size <= self.max_batch for size in self.preferred_batch):
            raise KasfError(f"preferred batch sizes {list(self.preferred_batch)} must lie in 1..max batch "
                            f"{self.max_batch}")
        if self.queue_delay_us < 0:
            raise KasfError(f"the queue delay must be 0 or more microseconds, got {self.queue_delay_us}")
        if self.stream_mode not in MODES:
            raise KasfError(f"stream mode must be one of {', '.join(MODES)}, got {self.stream_mode!r}")
        ports = [self.http_port, self.grpc_port, self.metrics_port]
        if len(set(ports)) != 3 or not all(0 < port < 65536 for port in ports):
            raise KasfError(f"the HTTP, gRPC and metrics ports must be three different ports, got {ports}")


def non_finite(keypoints: np.ndarray, request: int) -> str | None:
    """Where a request's keypoints hold NaN or Inf, as a sentence, or None."""
    bad = ~np.isfinite(keypoints)
    if not bad.any():
        return None
    clip, frame, joint, channel = (int(i) for i in np.argwhere(bad)[0])
    value = keypoints[clip, frame, joint, channel]
    return (f"request {request}: keypoints_2d holds {value} at clip {clip}, frame {frame}, joint {joint}, "
            f"channel {'xyc'[channel]} ({int(bad.sum())} values not finite); mark a missing joint with "
            "confidence 0 and finite coordinates")


class BatchEndpoint:
    """One model instance's inference callable: the batched requests through its own engine, in
    chunks of the engine's max batch."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def __call__(self, requests) -> list[dict[str, np.ndarray]]:
        arrays = [np.asarray(request["keypoints_2d"], dtype=np.float32) for request in requests]
        problems = [problem for i, array in enumerate(arrays) if (problem := non_finite(array, i))]
        if problems:
            raise InputError(f"{len(problems)} of {len(arrays)} batched requests refused: " + "; ".join(problems))
        keypoints = np.concatenate(arrays)
        step = self.engine.max_batch or len(keypoints)
        poses = np.concatenate([self.engine.infer(keypoints[i:i + step]) for i in range(0, len(keypoints), step)])
        bounds = np.cumsum([0] + [len(array) for array in arrays])
        return [{"poses_3d": poses[start:stop].astype(np.float32)} for start, stop in zip(bounds[:-1], bounds[1:])]


def triton_config(settings: ServeSettings):
    from pytriton.triton import TritonConfig

    return TritonConfig(http_address=settings.host, http_port=settings.http_port, grpc_address=settings.host,
                        grpc_port=settings.grpc_port, metrics_address=settings.host,
                        metrics_port=settings.metrics_port, exit_timeout_secs=settings.exit_timeout_s,
                        log_file=None if settings.log_file is None else Path(settings.log_file))


def security_config():
    """PyTriton's token-protected endpoints less statistics, which the load benchmark reads (loading
    and unloading models, shared memory, trace and logging stay behind the token)."""
    from pytriton.triton import DEFAULT_PROTECTED_ENDPOINTS, TritonSecurityConfig

    return TritonSecurityConfig(restricted_endpoints=[e for e in DEFAULT_PROTECTED_ENDPOINTS if e != "statistics"])


def bind_models(triton, open_engine: Callable[[], Engine], settings: ServeSettings) -> list[Engine]:
    """Bind the batch model (one engine per instance) and the streaming model (one more engine)."""
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    engines = [open_engine() for _ in range(settings.instances)]
    clip = (engines[0].n_frames, NUM_JOINTS, 3)
    max_batch = min(settings.max_batch, engines[0].max_batch or settings.max_batch)
    preferred = sorted({min(size, max_batch) for size in settings.preferred_batch})
    batcher = DynamicBatcher(max_queue_delay_microseconds=settings.queue_delay_us, preferred_batch_size=preferred)
    triton.bind(model_name=settings.name, infer_func=[BatchEndpoint(engine) for engine in engines],
                inputs=[Tensor(name="keypoints_2d", dtype=np.float32, shape=clip)],
                outputs=[Tensor(name="poses_3d", dtype=np.float32, shape=clip)],
                config=ModelConfig(max_batch_size=max_batch, batcher=batcher), strict=True)
    if settings.stream:
        engines.append(open_engine())
        stream = StreamEndpoint(engines[-1], settings.stream_mode, settings.stream_idle_s)
        triton.bind(model_name=f"{settings.name}_stream", infer_func=stream,
                    inputs=[Tensor(name=name, dtype=dtype, shape=shape, optional=name == "end")
                            for name, dtype, shape in STREAM_INPUTS],
                    outputs=[Tensor(name=name, dtype=dtype, shape=shape) for name, dtype, shape in STREAM_OUTPUTS],
                    config=ModelConfig(max_batch_size=max_batch, batcher=DynamicBatcher(
                        max_queue_delay_microseconds=settings.queue_delay_us)), strict=True)
    return engines


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def stub_instances(models: Sequence[str], ancestor: int | None = None) -> dict[str, int]:
    """{model instance: pid} of the Python backend stubs serving `models` (Triton names an instance
    `<model>_<group>_<index>`), those descended from `ancestor` only when given."""
    pattern = re.compile(rf"(?:{'|'.join(map(re.escape, models))})_\d+_\d+")
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        names = [arg for arg in argv[1:] if pattern.fullmatch(arg)]
        if not argv[0].endswith("triton_python_backend_stub") or not names:
            continue
        parent = int(entry.name)
        while ancestor is not None and parent not in (0, 1, ancestor):
            parent = _parent(parent)
        if ancestor is None or parent == ancestor:
            found[names[0]] = int(entry.name)
    return found


class Server:
    """A running Triton server with the engine's models; a context manager, or start() and stop()."""

    def __init__(self, open_engine: Callable[[], Engine], settings: ServeSettings | None = None):
        self.settings = settings or ServeSettings()
        self.settings.check()
        self.pytriton_version = require_pytriton()
        self._open_engine = open_engine
        self._triton = None
        self._stubs: dict[str, int] = {}
        self.engines: list[Engine] = []

    def start(self) -> "Server":
        from pytriton.triton import Triton

        stub_env = prepare_stub_env(self.settings.stub_env)
        self._triton = Triton(config=triton_config(self.settings), security_config=security_config())
        try:
            self.engines = bind_models(self._triton, self._open_engine, self.settings)
            with server_environment(stub_env):
                self._triton.run()
            self._stubs = stub_instances(self.models, os.getpid())
        except Exception as err:
            self.stop()
            raise KasfError(f"the Triton server did not start: {err}") from err
        return self

    @property
    def models(self) -> list[str]:
        return [self.settings.name] + ([f"{self.settings.name}_stream"] if self.settings.stream else [])

    def failure(self) -> str | None:
        """Why the server cannot answer any more, or None. A model instance whose stub process died
        counts: Triton keeps reporting the model ready and answers each request it routes there
        with "Stub process ... is not healthy", and does not restart it."""
        if self._triton is None or not self._triton.is_alive():
            return "the Triton server stopped"
        running = stub_instances(self.models, os.getpid())
        dead = [name for name in self._stubs if name not in running]
        return f"the stub process of model instance {', '.join(dead)} died" if dead else None

    def wait(self, stop: threading.Event, poll_s: float = 1.0) -> str | None:
        """Serve until `stop` is set (None) or the server can no longer answer (the reason)."""
        while not stop.wait(poll_s):
            if (reason := self.failure()) is not None:
                return reason
        return None

    def stop(self) -> None:
        if self._triton is not None:
            self._triton.stop()
            self._triton = None
        for engine in self.engines:
            engine.close()
        self.engines = []

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def urls(self) -> dict[str, str]:
        s = self.settings
        return {"http": f"{s.host}:{s.http_port}", "grpc": f"{s.host}:{s.grpc_port}",
                "metrics": f"http://{s.host}:{s.metrics_port}/metrics"}
