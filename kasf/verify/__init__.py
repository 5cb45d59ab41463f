"""Verification: engines against the PyTorch FP32 reference, in the task metric and against the
reference's own numerical noise floor (parity), with the reports that show it."""

from .parity import BUDGETS_MM, ParityCheck, budget_for, check_reference, parity_clips
from .report import format_parity, format_per_joint, plot_per_joint

__all__ = ["BUDGETS_MM", "ParityCheck", "budget_for", "check_reference", "format_parity", "format_per_joint",
           "parity_clips", "plot_per_joint"]
