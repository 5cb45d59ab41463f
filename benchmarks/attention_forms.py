"""Which attention form runs faster in ONNX Runtime: MatMul-Softmax-MatMul on 4-D heads (opset 18,
the form TensorRT fuses) or the ONNX Attention op on 3-D sequences (opset 23, `--attention sdpa`)?

    python benchmarks/attention_forms.py --preset paper --batch 1 32

Exports both forms of one randomly initialised model, checks they agree, and prints ONNX Runtime
CPU latency (median and p90 over --runs runs after a warm-up) for each batch size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import kasf
from kasf.model.checkpoint import Checkpoint
from kasf.engines.onnxruntime import OnnxRuntimeEngine
from kasf.export.onnx import export_onnx
from kasf.table import render_table

FORMS = {"MatMul-Softmax-MatMul": (18, False), "Attention op (SDPA)": (23, True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = kasf.build_model(args.preset).eval()
    checkpoint = Checkpoint(model.config, model.state_dict())
    rows, outputs = [], {}
    with tempfile.TemporaryDirectory() as folder:
        for name, (opset, use_sdpa) in FORMS.items():
            result = export_onnx(checkpoint, Path(folder) / f"{opset}.onnx", opset=opset, use_sdpa=use_sdpa)
            with OnnxRuntimeEngine(result.path, threads=args.threads) as engine:
                for batch in args.batch:
                    keypoints = np.random.default_rng(batch).uniform(-1, 1, (batch, 27, 17, 3)).astype(np.float32)
                    keypoints[..., 2] = 1.0
                    engine.warmup(3, batch)
                    timings = []
                    for _ in range(args.runs):
                        start = time.perf_counter()
                        outputs[name, batch] = engine.infer(keypoints)
                        timings.append(1e3 * (time.perf_counter() - start))
                    rows.append((name, opset, result.op_counts.get("Attention", 0), batch,
                                 float(np.median(timings)), float(np.percentile(timings, 90))))
    for batch in args.batch:
        first, second = (outputs[name, batch] for name in FORMS)
        print(f"batch {batch}: max difference between the forms {np.abs(first - second).max():.2e}")
    print(render_table(["form", "opset", "Attention ops", "batch", "median ms", "p90 ms"], rows,
                       title=f"ONNX Runtime CPU, {args.preset} preset, {args.threads} threads, {args.runs} runs"))


if __name__ == "__main__":
    main()
