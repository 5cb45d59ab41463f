"""Optimize: the fastest engine for a checkpoint that keeps its accuracy, chosen by measurement
(make every candidate, check its parity within budget, time them interleaved, keep the winner)."""

from .load import load_best
from .report import format_candidates, write_report
from .run import BEST, DEVICES, PARITY_CLIPS, Candidate, candidates, optimize

__all__ = ["BEST", "DEVICES", "PARITY_CLIPS", "Candidate", "candidates", "format_candidates", "load_best",
           "optimize", "write_report"]
