"""`kasf export`: an ONNX graph (FP32 or strongly typed FP16) or an AOTInductor package (FP32 or
BF16), checked in mm."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import KasfError
from ..files import write_json
from ..model import build_from_checkpoint, read_checkpoint
from ..table import render_table
from .arguments import add_budget_argument, parse_budgets

HELP = "ONNX graph (FP32 or strongly typed FP16) or AOTInductor package (FP32 or BF16), with parity in mm"
DESCRIPTION = ("Fuse the model (limb composers, attention, BatchNorm, LayerScale), export it to ONNX (or, with --aoti, "
               "compile it into an AOTInductor package for the C++ runtime) and check it against PyTorch.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..export.onnx import ATTENTION_OP_OPSET, DEFAULT_OPSET, MAX_OPSET, MIN_OPSET

    parser.add_argument("--checkpoint", required=True, help="a kasf or authors' checkpoint")
    parser.add_argument("--config", help="the authors' YAML (for their checkpoints)")
    parser.add_argument("-o", "--output", required=True, help="the .onnx file to write (.pt2 with --aoti)")
    parser.add_argument("--aoti", action="store_true",
                        help="an AOTInductor package (.pt2, FP32 or --bf16) for the C++ runtime instead of an "
                             "ONNX graph")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="--aoti: the device to compile for (default cpu)")
    parser.add_argument("--fp16", action="store_true", help="strongly typed FP16 graph (FP32 IO and islands)")
    parser.add_argument("--int8", action="store_true",
                        help="the INT8 QDQ graph (kasf.export.quantize: INT8_PRODUCTS quantized, FP32 islands), "
                             "calibrated on the embedded motion capture's training clips")
    parser.add_argument("--calibration-clips", type=int, default=128,
                        help="--int8: training clips the scales are calibrated on (default 128)")
    parser.add_argument("--bf16", action="store_true",
                        help="--aoti: a BF16 package (FP32 IO and islands), for CPUs with AVX-512 BF16 or AMX "
                             "and GPUs from Ampere")
    parser.add_argument("--opset", type=int,
                        help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET}, "
                             f"{ATTENTION_OP_OPSET} with --attention sdpa)")
    parser.add_argument("--max-batch", type=int, default=1024, help="largest batch the graph accepts")
    parser.add_argument("--attention", choices=["matmul", "sdpa"], default="matmul",
                        help="matmul: MatMul-Softmax-MatMul on 4-D heads, the form TensorRT fuses (default); "
                             "sdpa: the ONNX Attention op on 3-D sequences, ONNX Runtime's fastest form")
    parser.add_argument("--compare-plain", action="store_true",
                        help="also export the unfused model and print both op histograms")
    parser.add_argument("--parity-clips", type=int, default=64, help="clips for the parity check (default 64)")
    parser.add_argument("--no-parity", action="store_true", help="skip the parity check")
    add_budget_argument(parser)
    parser.add_argument("--report", help="write the export report (JSON) here")


def run(args: argparse.Namespace) -> int:
    budgets = parse_budgets(args.budget)
    checkpoint = read_checkpoint(args.checkpoint, args.config)
    export = _export_aoti if args.aoti else _export_int8 if args.int8 else _export_onnx
    report = export(checkpoint, args)
    if not args.no_parity:
        report["parity"] = _parity(checkpoint, Path(report["path"]), args.parity_clips, budgets)
    if args.report:
        write_json(args.report, report)
        print(f"wrote {args.report}")
    return 0 if report.get("parity", {}).get("passed", True) else 1


def _export_onnx(checkpoint, args: argparse.Namespace) -> dict:
    from ..export.onnx import export_onnx, op_histogram, plain_graph

    if args.bf16:
        raise KasfError("--bf16 applies to --aoti packages only: ONNX Runtime's CPU has no fast BF16 kernels "
                        "(it would run slower than FP32); add --aoti, or use --fp16 for a TensorRT graph")
    result = export_onnx(checkpoint, args.output, fp16=args.fp16, opset=args.opset, max_batch=args.max_batch,
                         use_sdpa=args.attention == "sdpa")
    report = {"path": str(result.path), "precision": result.precision, "opset": result.opset,
              "size_mb": result.size_bytes / 1e6, "nodes": result.nodes, "op_counts": result.op_counts}
    print(f"wrote {result.path}: {result.precision}, opset {result.opset}, {result.size_bytes / 1e6:.1f} MB, "
          f"{result.nodes} nodes")
    if args.compare_plain:
        plain = op_histogram(plain_graph(build_from_checkpoint(checkpoint), result.opset))
        report["plain_op_counts"], report["plain_nodes"] = plain, sum(plain.values())
        ops = sorted(set(plain) | set(result.op_counts), key=lambda op: -plain.get(op, 0) - result.op_counts.get(op, 0))
        rows = [(op, plain.get(op, 0), result.op_counts.get(op, 0)) for op in ops]
        rows.append(("total", report["plain_nodes"], result.nodes))
        print(render_table(["op", "plain export", "kasf fused"], rows,
                           title=f"nodes by op type: {100 * (1 - result.nodes / report['plain_nodes']):.1f}% fewer"))
    return report


def _export_int8(checkpoint, args: argparse.Namespace) -> dict:
    from ..export.quantize import export_int8

    clashing = [flag for flag, given in (("--fp16", args.fp16), ("--bf16", args.bf16),
                                         ("--attention sdpa", args.attention == "sdpa"),
                                         ("--opset", args.opset is not None)) if given]
    if clashing:
        raise KasfError(f"{', '.join(clashing)} cannot go with --int8: the INT8 graph is the MatMul-Softmax-MatMul "
                        "form at opset 18 with FP32 islands (see kasf.export.quantize)")
    result = export_int8(checkpoint, args.output, max_batch=args.max_batch, calibration_clips=args.calibration_clips)
    print(f"wrote {result.path}: int8 (QDQ, {result.op_counts.get('QuantizeLinear', 0)} QuantizeLinear), "
          f"opset {result.opset}, {result.size_bytes / 1e6:.1f} MB, {result.nodes} nodes")
    return {"path": str(result.path), "precision": result.precision, "opset": result.opset,
            "size_mb": result.size_bytes / 1e6, "nodes": result.nodes, "op_counts": result.op_counts}


def _export_aoti(checkpoint, args: argparse.Namespace) -> dict:
    from ..export.aoti import export_aoti

    onnx_only = [flag for flag, given in (("--fp16", args.fp16), ("--int8", args.int8),
                                          ("--compare-plain", args.compare_plain),
                                          ("--attention sdpa", args.attention == "sdpa"),
                                          ("--opset", args.opset is not None)) if given]
    if onnx_only:
        raise KasfError(f"{', '.join(onnx_only)} apply to ONNX graphs, not to --aoti packages (FP32 or BF16)")
    result = export_aoti(checkpoint, args.output, max_batch=args.max_batch, device=args.device,
                         precision="bf16" if args.bf16 else "fp32")
    print(f"wrote {result.path}: AOTInductor package, {result.precision}, {result.device}, batch 1 to "
          f"{result.max_batch}, {result.size_bytes / 1e6:.1f} MB")
    return {"path": str(result.path), "precision": result.precision, "aoti_device": result.device,
            "size_mb": result.size_bytes / 1e6, "max_batch": result.max_batch}


def _parity(checkpoint, path: Path, n_clips: int, budgets: dict[str, float]) -> dict:
    from ..verify import format_parity
    from ..verify.parity import check_exported

    parity = check_exported(checkpoint, path, n_clips, budgets)
    if "skipped" in parity:
        print(f"parity skipped: {parity['skipped']}")
        return parity
    print(format_parity([{**parity, "engine": path.name}],
                        title=f"parity against PyTorch FP32 on {parity['clips']} motion-capture test clips (mm)"))
    return parity
