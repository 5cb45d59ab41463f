"""`kasf export-triton`: a Triton Inference Server model repository entry."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "a Triton Inference Server model repository entry"
DESCRIPTION = ("Put a TensorRT engine (.engine/.plan with its sidecar JSON) or a kasf ONNX graph into a Triton model "
               "repository with dynamic batching.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..serve.triton import DEFAULT_NAME, DEFAULT_ONNX_MAX_BATCH, DEFAULT_QUEUE_DELAY_US, KINDS

    parser.add_argument("model", help="the .engine/.plan (with its sidecar JSON) or .onnx file")
    parser.add_argument("--repository", required=True, help="the model repository directory")
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"model name in the repository (default {DEFAULT_NAME})")
    parser.add_argument("--max-batch", type=int,
                        help=f"max_batch_size (default: the engine profile's max; {DEFAULT_ONNX_MAX_BATCH} for ONNX)")
    parser.add_argument("--instances", type=int, default=1, help="model instances (default 1)")
    parser.add_argument("--kind", choices=KINDS, default="gpu", help="instance kind (default gpu; cpu only for ONNX)")
    parser.add_argument("--preferred-batch", type=int, nargs="+", default=[], metavar="N",
                        help="the dynamic batcher's preferred batch sizes (default none)")
    parser.add_argument("--max-queue-delay-us", type=int, default=DEFAULT_QUEUE_DELAY_US,
                        help=f"longest a request waits for its batch to fill, in microseconds "
                             f"(default {DEFAULT_QUEUE_DELAY_US})")
    parser.add_argument("--force", action="store_true", help="replace an existing model directory")


def run(args: argparse.Namespace) -> int:
    from google.protobuf import text_format

    from ..serve.triton import export_triton

    model = export_triton(args.model, args.repository, name=args.name, max_batch=args.max_batch,
                          instances=args.instances, kind=args.kind, preferred_batch_sizes=args.preferred_batch,
                          max_queue_delay_us=args.max_queue_delay_us, overwrite=args.force)
    print(f"wrote {model.directory}: {model.config.platform}, max batch {model.config.max_batch_size}, "
          f"{args.instances} x {args.kind.upper()} instance(s), model {model.model_path.name}")
    print(text_format.MessageToString(model.config), end="")
    if model.note:
        print(f"note: {model.note}")
    print(f"serve it with: tritonserver --model-repository {Path(args.repository).resolve()}")
    return 0
