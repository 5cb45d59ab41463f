"""`kasf serve` in a process of its own, for tests, load benchmarks and scripts that need a real
server beside their clients: free loopback ports, ready once Triton says its models are, stopped
with SIGTERM the way a service manager stops it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

from ..errors import KasfError
from .triton import DEFAULT_NAME


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class ServerProcess:
    """`python -m kasf serve ENGINE ARGS...` on free loopback ports; a context manager."""

    def __init__(self, engine: str | Path, args: Sequence[str] = (), name: str = DEFAULT_NAME,
                 start_timeout_s: float = 300.0):
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        self.name = name
        self.command = [sys.executable, "-m", "kasf", "serve", str(engine), "--name", name,
                        "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port),
                        "--metrics-port", str(self.metrics_port), *map(str, args)]
        self.start_timeout_s = start_timeout_s
        self.lines: list[str] = []
        self.process: subprocess.Popen | None = None

    @property
    def http(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def start(self) -> "ServerProcess":
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True).start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise KasfError(f"kasf serve did not become ready ({' '.join(self.command)}):\n{self.output[-4000:]}")
            time.sleep(0.5)
        return self

    def ready(self) -> bool:
        """Triton says the batch model is ready, and kasf serve has said it serves (every model loaded)."""
        import tritonclient.http as http

        if not any(line.startswith("serving ") for line in self.lines):
            return False
        try:
            client = http.InferenceServerClient(self.http, connection_timeout=2.0, network_timeout=2.0)
            return client.is_server_ready() and client.is_model_ready(self.name)
        except Exception:          # not listening yet, or half up: not ready
            return False

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, then the exit code (a kill, and -9, past timeout_s)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
