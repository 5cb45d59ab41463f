"""Where ONNX Runtime spends its time on a kasf graph: kernel time by op type, from ONNX Runtime's
own profiler (the session after its graph optimisations, CPU provider).

    python benchmarks/ort_profile.py runs/paper/model.onnx --batch 1 --runs 15 --threads 2
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from kasf.bench import benchmark_keypoints
from kasf.export.artifact import INPUT_NAME, read_metadata
from kasf.table import render_table


def profile(path: str, batch: int, runs: int, threads: int | None) -> tuple[list[tuple], float]:
    """([(op, share of kernel time %, ms per run, nodes)], median model run ms) over `runs` runs
    after one warm-up run."""
    n_frames = read_metadata(path)["kasf_model_config"]["n_frames"]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as folder:
        options.profile_file_prefix = str(Path(folder) / "ort")
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        keypoints = benchmark_keypoints(batch, n_frames)
        for _ in range(runs + 1):
            session.run(None, {INPUT_NAME: keypoints})
        events = json.loads(Path(session.end_profiling()).read_text())
    model_runs = sorted((event["ts"], event["dur"]) for event in events if event.get("name") == "model_run")
    warmed = model_runs[0][0] + model_runs[0][1]   # the first run warms up: its events are left out
    kernel_us: collections.Counter = collections.Counter()
    nodes: collections.Counter = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and event["ts"] >= warmed:
            kernel_us[event["args"]["op_name"]] += event["dur"]
            nodes[event["args"]["op_name"]] += 1
    total = sum(kernel_us.values())
    rows = [(op, 100 * us / total, us / runs / 1e3, nodes[op] // runs) for op, us in kernel_us.most_common()]
    return rows, float(np.median([duration for _, duration in model_runs[1:]])) / 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx", help="a graph from `kasf export`")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20, help="runs counted, after one warm-up (default 20)")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: ONNX Runtime's choice)")
    args = parser.parse_args(argv)
    rows, median_ms = profile(args.onnx, args.batch, args.runs, args.threads)
    print(render_table(["op", "% of kernel time", "ms per run", "nodes"], rows,
                       title=f"{args.onnx}, batch {args.batch}, {args.runs} runs: median run {median_ms:.2f} ms "
                             "(with the profiler's overhead)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
