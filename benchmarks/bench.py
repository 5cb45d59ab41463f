"""Time engines side by side, interleaved, with trtexec's conventions (the same as `kasf bench`).

    python benchmarks/bench.py --checkpoint runs/mocap/best.pt --batch 1 8 32 128 --threads 2
    python benchmarks/bench.py --engine model.onnx model_fp16.onnx best.pt --reference best.pt
    python benchmarks/bench.py --engine best.pt:device=cuda,precision=fp16,cuda_graphs=true model.engine

Prints one table (latency, throughput, parity in mm, achieved GFLOP/s against this machine's
measured matmul peak) and writes bench.json, bench.csv and bench.png into --out.
"""

import sys

from kasf.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
