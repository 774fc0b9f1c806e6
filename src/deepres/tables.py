"""Render a list of dicts as an aligned table, markdown, csv or json; the columns are every key, in
order of first appearance."""

from __future__ import annotations

import csv
import io
import json
import textwrap

FORMATS = ("table", "markdown", "csv", "json")


def _cell(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)


def render(rows: list[dict], fmt: str = "table", width: int | None = None) -> str:
    """``width``: for ``table``, wrap a text last column (a description) so that lines fit in it."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for r in rows for k in r))  # rows may differ: none is dropped
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, cols, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue().rstrip("\n")
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        return "\n".join(lines)
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    # Text left-aligned, numbers right-aligned.
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows) for c in cols]
    indent = sum(widths[:-1]) + 2 * (len(cols) - 1)  # where the last column starts
    wrap = width is not None and not numeric[-1] and indent + widths[-1] > width
    if wrap:
        widths[-1] = max(width - indent, 20, len(cols[-1]))  # a narrow terminal still gets readable text

    def fmt_row(row: list[str]) -> str:
        padded = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(row[:-1], widths, numeric, strict=False)]
        last = (textwrap.wrap(row[-1], widths[-1], break_on_hyphens=False) or [""]) if wrap else [row[-1]]
        lines = ["  ".join([*padded, last[0]]), *(" " * indent + line for line in last[1:])]
        return "\n".join(line.rstrip() for line in lines)

    return "\n".join([fmt_row(cols), fmt_row(["-" * w for w in widths])] + [fmt_row(r) for r in cells])
