"""The optimize report: one row per candidate (precision, parity verdict and figures, p50/p99 and
clips/s at each batch, its speed-up over PyTorch FP32 eager, and why it won or lost), printed and
written as report.md and report.json, with each reduced-precision candidate's per-joint parity."""

from __future__ import annotations

from pathlib import Path

from ..bench.report import format_table as format_bench_table
from ..files import atomic_write, write_json
from ..table import render_table
from ..verify.report import format_per_joint


def _columns(batches: list[int]) -> list[str]:
    timing = [f"b{b} {what}" for b in batches for what in ("p50 ms", "p99 ms", "clips/s", "speed-up")]
    return ["candidate", "precision", "parity", "deviation mm", "dMPJPE mm", "95% interval", "budget mm", *timing,
            "verdict"]


def _row(candidate: dict, batches: list[int]) -> list:
    parity = candidate["parity"] or {}
    interval = parity.get("mpjpe_interval_mm")
    cells = [candidate["name"], candidate["precision"], parity.get("verdict"), parity.get("deviation_mean_mm"),
             parity.get("mpjpe_difference_mm"), f"[{interval[0]:+.3f}, {interval[1]:+.3f}]" if interval else None,
             parity.get("budget_mm")]
    for batch in batches:
        timing = candidate["timings"].get(str(batch))
        speedup = candidate["speedups"].get(str(batch))
        cells += ([timing["latency"]["median_ms"], timing["latency"]["p99_ms"], timing["clips_per_s"],
                   f"{speedup:.2f}x" if speedup else None] if timing else [None] * 4)
    return cells + [candidate["verdict"]]


def format_candidates(report: dict) -> str:
    """The candidates table, then the winner (or that none passed)."""
    batches = report["batches"]
    table = render_table(_columns(batches), [_row(c, batches) for c in report["candidates"]], digits=3,
                         title=f"kasf optimize on {report['device']}: candidates against PyTorch FP32 eager")
    ending = (f"winner: {report['winner']} -> {report['best']}" if report["winner"] else
              "no candidate passed parity within its budget: nothing written as best")
    return f"{table}\n{ending}"


def _per_joint(report: dict) -> list[str]:
    """Each reduced-precision candidate's per-joint parity (deviation, floor, MPJPE difference)."""
    sections = []
    for candidate in report["candidates"]:
        full = report["bench"]["parity"].get(candidate["label"])
        if full and candidate["precision"] != "fp32":
            sections.append(f"### {candidate['name']}\n\n```\n{format_per_joint(full)}\n```")
    return sections


def write_report(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """report.json (everything, the bench's own record inside) and report.md (the tables)."""
    out = Path(out_dir)
    environment = report["bench"]["environment"]
    text = "\n\n".join([
        f"# kasf optimize: {report['checkpoint']} on {report['device']}",
        f"Machine: {environment['cpu']}, {environment['usable_cpus']} usable CPUs, torch threads "
        f"{environment['torch_threads']}; budgets (mm): "
        + ", ".join(f"{p} {v:g}" for p, v in report["budgets_mm"].items()),
        f"```\n{format_candidates(report)}\n```",
        f"## The benchmark\n\n```\n{format_bench_table(report['bench'])}\n```",
        *(["## Per joint"] + _per_joint(report) if _per_joint(report) else []),
        "## Notes\n\n" + "\n".join(f"- {note}" for note in report["bench"]["notes"]) if report["bench"]["notes"] else "",
    ]).rstrip() + "\n"
    paths = {"json": write_json(out / "report.json", report), "md": out / "report.md"}
    atomic_write(paths["md"], lambda tmp: Path(tmp).write_text(text))
    return paths
