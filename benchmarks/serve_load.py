"""Load on `kasf serve` (a real Triton server, started here on loopback) from 1 to 64 clients.

    python benchmarks/serve_load.py runs/small15/model_fp32.onnx --clients 1 8 64 --requests 600 --seconds 60 \
        --threads 2 --json runs/serve_load.json

Each level: N gRPC clients, one clip per request, each waiting for its answer, until --requests
are sent or --seconds pass. Prints p50/p99 latency, throughput, failed requests, answers that differ
from the engine's own outputs (run here, in this process) and the server's batch sizes (Triton's
statistics). Then the kill run: the same load with --kill-clients, and one model instance's stub
process killed (SIGKILL) a third of the way in: what the clients got, whether the server stayed up,
and whether requests succeed afterwards.
"""

import argparse
import json
import platform
import subprocess
import sys
import threading
import time

import numpy as np

from kasf.bench.machine import environment
from kasf.engines import load_engine
from kasf.serve.load import kill_instance, run_level
from kasf.serve.process import ServerProcess


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine", help="the model file kasf serve serves (and this script runs for the reference)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--requests", type=int, default=600, help="requests per level (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=60.0, help="longest a level runs (default %(default)s)")
    parser.add_argument("--threads", type=int, help="the server engines' intra-op threads")
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--preferred-batch", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--max-queue-delay-us", type=int, default=100)
    parser.add_argument("--kill-clients", type=int, default=8, help="clients of the kill run; 0: no kill run")
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args(argv)


def serve_args(args) -> list[str]:
    found = ["--instances", args.instances, "--preferred-batch", *args.preferred_batch,
             "--max-queue-delay-us", args.max_queue_delay_us, "--no-stream"]
    return found + (["--threads", args.threads] if args.threads else [])


def kill_run(args, clips, expected) -> dict:
    """A fresh server under load with one instance's stub killed a third of the way in: what the
    clients got, how the server ended, and a restart (what a supervisor does) answering again."""
    killed, lock = [], threading.Lock()
    server = ServerProcess(args.engine, serve_args(args)).start()

    def on_request(number):
        with lock:
            if number == args.requests // 3 and not killed:
                killed.append(kill_instance(server.name))
                killed_at.append(time.monotonic())
    killed_at: list[float] = []
    during = run_level(server.grpc, server.name, clips, expected, args.kill_clients, args.requests, args.seconds,
                       on_request)
    try:
        exit_code = server.process.wait(60)
    except subprocess.TimeoutExpired:
        exit_code = None
    exited_after_s = time.monotonic() - killed_at[0] if killed_at and exit_code is not None else None
    server.stop()
    restart_started = time.monotonic()
    with ServerProcess(args.engine, serve_args(args)) as restarted:
        ready_s = time.monotonic() - restart_started
        after = run_level(restarted.grpc, restarted.name, clips, expected, 1, 20, 30.0)
    return {"killed_instance": killed, "during": during.summary(), "server_exit_code": exit_code,
            "server_exited_after_kill_s": exited_after_s, "server_stderr": server.output.strip().splitlines()[-1:],
            "restart_ready_s": ready_s, "after_restart": after.summary()}


def in_process_ms(engine, clips, runs: int = 15) -> float:
    """The engine's own median latency here, for what the server adds."""
    engine.infer(clips)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        engine.infer(clips)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def table(levels) -> str:
    rows = ["| clients | requests | failed | differ | p50 ms | p99 ms | clips/s | mean server batch | server batches |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for level in levels:
        batches = ", ".join(f"{size}x{count}" for size, count in sorted(level.batches.items()))
        rows.append(f"| {level.clients} | {level.sent} | {level.failed} | {level.mismatched} | "
                    f"{level.percentile(50):.1f} | {level.percentile(99):.1f} | {level.throughput:.1f} | "
                    f"{level.mean_batch:.2f} | {batches} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    args = parse_args(argv)
    engine = load_engine(args.engine, **({"threads": args.threads} if args.threads else {}))
    rng = np.random.default_rng(0)
    clips = rng.uniform(-1, 1, (64, engine.n_frames, 17, 3)).astype(np.float32)
    clips[..., 2] = rng.uniform(0.3, 1.0, clips.shape[:-1])
    expected = np.concatenate([engine.infer(clips[i:i + 1]) for i in range(len(clips))])
    in_process = {batch: in_process_ms(engine, clips[:batch]) for batch in (1, 8)}
    engine.close()
    print("in-process engine, no server: " + ", ".join(f"batch {b} {ms:.1f} ms ({b / ms * 1e3:.1f} clips/s)"
                                                       for b, ms in in_process.items()), flush=True)
    with ServerProcess(args.engine, serve_args(args)) as server:
        run_level(server.grpc, server.name, clips, expected, 4, 64, 60.0)          # warm-up, not reported
        levels = [run_level(server.grpc, server.name, clips, expected, n, args.requests, args.seconds)
                  for n in args.clients]
        print(table(levels), flush=True)
        exit_code = server.stop()
    killed = kill_run(args, clips, expected) if args.kill_clients else None
    if killed is not None:
        print(json.dumps(killed, indent=2))
    print(f"server exit code after SIGTERM: {exit_code}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"engine": args.engine, "settings": vars(args), "environment": environment(),
                       "python": platform.python_version(),
                       "in_process_ms": in_process, "levels": [level.summary() for level in levels],
                       "kill": killed, "server_exit_code": exit_code}, handle, indent=2, default=str)
    return 0 if all(level.failed == level.mismatched == 0 for level in levels) else 1


if __name__ == "__main__":
    sys.exit(main())
