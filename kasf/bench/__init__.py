"""The benchmark stage: engines timed side by side, interleaved, with trtexec's conventions."""

from .machine import environment, matmul_peak_gflops
from .report import format_speedups, format_table, plot, write_report
from .run import PARITY_CLIPS, BenchSettings, run_benchmark, speedups
from .specs import EngineSpec, checkpoint_specs, distinct_labels, parse_engine_spec
from .timing import (CV_WARNING, MIN_DURATION_S, MIN_ITERATIONS, PERCENTILES, SETTLE_S, WARMUP_S, benchmark_keypoints,
                     engine_runner, latency_stats, run_interleaved, stability_warning)

__all__ = ["BenchSettings", "CV_WARNING", "EngineSpec", "MIN_DURATION_S", "MIN_ITERATIONS", "PARITY_CLIPS",
           "PERCENTILES", "SETTLE_S", "WARMUP_S", "benchmark_keypoints", "checkpoint_specs", "distinct_labels",
           "engine_runner", "environment", "format_speedups", "format_table", "latency_stats", "matmul_peak_gflops",
           "parse_engine_spec", "plot", "run_benchmark", "run_interleaved", "speedups", "stability_warning",
           "write_report"]
