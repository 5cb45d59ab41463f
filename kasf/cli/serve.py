"""`kasf serve`: an engine behind a real Triton Inference Server (PyTriton), until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .arguments import add_engine_arguments, open_engine

HELP = "serve an engine on a real Triton Inference Server (HTTP and gRPC, dynamic batching, streaming)"
DESCRIPTION = ("Start Triton Inference Server through PyTriton with the engine's batch model (keypoints_2d [B, 27, 17, "
               "3] in, poses_3d out, dynamic batching over --instances engines) and a streaming model (one frame of a "
               "tracked person per request, windows kept on the server). Serves until SIGINT or SIGTERM.")
EPILOG = """examples:
  kasf serve model.onnx --threads 2 --instances 2 --preferred-batch 8 16
  kasf serve model_fp16.engine --host 0.0.0.0 --http-port 9000 --grpc-port 9001 --metrics-port 9002
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..serve.server import ServeSettings
    from ..stream import MODES

    defaults = ServeSettings()
    parser.add_argument("engine", help="the model: any engine file (.onnx, .engine, .pt2) or a checkpoint (.pt/.pth)")
    network = parser.add_argument_group("network")
    network.add_argument("--host", default=defaults.host, help=f"address to listen on (default {defaults.host})")
    network.add_argument("--http-port", type=int, default=defaults.http_port, help="default %(default)s")
    network.add_argument("--grpc-port", type=int, default=defaults.grpc_port, help="default %(default)s")
    network.add_argument("--metrics-port", type=int, default=defaults.metrics_port, help="default %(default)s")
    model = parser.add_argument_group("model")
    model.add_argument("--name", default=defaults.name, help="model name (default %(default)s; the streaming "
                                                             "model is NAME_stream)")
    model.add_argument("--instances", type=int, default=defaults.instances,
                       help="model instances, each with its own engine (default %(default)s)")
    model.add_argument("--max-batch", type=int, default=defaults.max_batch,
                       help="max_batch_size (default %(default)s, or the engine's max when lower)")
    model.add_argument("--preferred-batch", type=int, nargs="+", default=list(defaults.preferred_batch),
                       metavar="N", help="the dynamic batcher's preferred batch sizes (default %(default)s)")
    model.add_argument("--max-queue-delay-us", type=int, default=defaults.queue_delay_us,
                       help="longest a request waits for its batch to fill (default %(default)s)")
    stream = parser.add_argument_group("streaming model")
    stream.add_argument("--no-stream", action="store_true", help="serve the batch model only")
    stream.add_argument("--stream-mode", choices=MODES, default=defaults.stream_mode,
                        help="causal (lag 0) or centred (lag 13) (default %(default)s)")
    stream.add_argument("--stream-idle", type=float, default=defaults.stream_idle_s, metavar="SECONDS",
                        help="drop a track unseen this long (default %(default)s)")
    server = parser.add_argument_group("server")
    server.add_argument("--log-file", help="tritonserver's log (default: its console output)")
    server.add_argument("--stub-env", help="the Python backend stubs' environment (default: made in ~/.cache/kasf)")
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..serve.server import Server, ServeSettings

    settings = ServeSettings(
        host=args.host, http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port,
        name=args.name, instances=args.instances, max_batch=args.max_batch, preferred_batch=args.preferred_batch,
        queue_delay_us=args.max_queue_delay_us, stream=not args.no_stream, stream_mode=args.stream_mode,
        stream_idle_s=args.stream_idle, log_file=args.log_file, stub_env=args.stub_env)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with Server(lambda: open_engine(args), settings) as server:
        models = [settings.name] + ([f"{settings.name}_stream"] if settings.stream else [])
        print(f"serving {', '.join(models)} ({args.engine}, {settings.instances} instance(s), PyTriton "
              f"{server.pytriton_version}) on HTTP {server.urls['http']}, gRPC {server.urls['grpc']}, "
              f"metrics {server.urls['metrics']}", flush=True)
        failure = server.wait(stop)
    if failure is None:
        print("stopped", flush=True)
        return 0
    print(f"kasf serve: error: {failure}; the server stopped, so that its supervisor (systemd, Kubernetes, "
          "docker --restart) starts it again", file=sys.stderr, flush=True)
    return 1
