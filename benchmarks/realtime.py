"""Real-time capacity of the streaming runtime (kasf.stream.runtime) with one engine on this machine.

    python benchmarks/realtime.py --engine model.onnx --people 1 4 8 --fps 30 --mode causal --seconds 5
    python benchmarks/realtime.py --engine model.onnx --lag 0 --stride 27 --worker --people 30

Replays the embedded motion capture's test sequences as N tracked people at the given frame rate,
prints per-frame latency percentiles and dropped frames for each N, then searches (doubling, then
bisecting) for the most people sustainable: p99 frame latency within 1/fps, p99 window latency
(a window falling due to its poses being ready) within stride/fps, and at most 1% of frames
dropped. The same as `kasf realtime`; see `--help`.
"""

import sys

from kasf.cli import main

if __name__ == "__main__":
    sys.exit(main(["realtime", *sys.argv[1:]]))
