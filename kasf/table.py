"""One way to print a table, used by every report kasf prints (evaluation, accuracy, benchmarks)."""

from __future__ import annotations

from typing import Any, Sequence


def format_cell(value: Any, digits: int = 2) -> str:
    """One cell of any kasf table, text or HTML: '-' for missing, yes/no, floats to `digits`."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 2, title: str = "") -> str:
    """Aligned plain-text table: text columns left, numbers right; floats with `digits` decimals."""
    cells = [[format_cell(v, digits) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [bool(rows) and all(isinstance(row[i], (int, float)) or row[i] is None for row in rows)
               for i in range(len(headers))]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [title] if title else []
    out += [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(out)
