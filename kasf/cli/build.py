"""`kasf build`: a TensorRT engine from a `kasf export` graph (needs tensorrt and a GPU)."""

from __future__ import annotations

import argparse

HELP = "TensorRT engine from an ONNX graph (needs tensorrt and a GPU)"
DESCRIPTION = ("Build a strongly typed TensorRT engine from a `kasf export` graph, with a sidecar JSON and a precision "
               "report (share of FP16 layers, fused attention).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("onnx", help="a graph from `kasf export` (--fp16 for an FP16 engine)")
    parser.add_argument("-o", "--output", required=True, help="the engine to write (.engine); its sidecar goes beside it")
    parser.add_argument("--min-batch", type=int, default=1, help="smallest batch the engine takes (default 1)")
    parser.add_argument("--opt-batch", type=int, default=32, help="batch TensorRT tunes for (default 32)")
    parser.add_argument("--max-batch", type=int, default=256, help="largest batch the engine takes (default 256)")
    parser.add_argument("--workspace", type=float, default=4.0, help="builder workspace in GiB (default 4)")
    parser.add_argument("--opt-level", type=int, default=3, choices=range(6), metavar="0-5",
                        help="builder optimisation level (default 3, TensorRT's)")
    parser.add_argument("--timing-cache", help="timing cache file: read if present, written after the build")


def run(args: argparse.Namespace) -> int:
    from ..engines.tensorrt import build_engine

    built = build_engine(args.onnx, args.output, args.min_batch, args.opt_batch, args.max_batch,
                         args.workspace, args.opt_level, args.timing_cache)
    sidecar, report = built.sidecar, built.sidecar["precision_report"]
    profile = {k: v[0] for k, v in sidecar["profile"].items()}
    print(f"wrote {built.path}: {sidecar['precision']} graph, TensorRT {sidecar['tensorrt_version']} "
          f"({sidecar['network']}), {sidecar['gpu_name']} (compute capability {sidecar['compute_capability']}), "
          f"{sidecar['engine_bytes'] / 1e6:.1f} MB in {sidecar['builder']['build_seconds']:.0f} s")
    print(f"  batch profile min {profile['min']}, opt {profile['opt']}, max {profile['max']}; "
          f"sidecar {built.sidecar_path.name}, layer information {built.layers_path.name}")
    if not report["detailed"]:
        print(f"  {report['note']}")
        return 0
    fused = report["fused_attention_layers"]
    print(f"  {report['layers']} layers, {100 * report['fp16_share']:.1f}% of the floating-point ones in FP16; "
          f"attention {'fused (' + str(len(fused)) + ' layers)' if fused else 'not fused'}")
    return 0
