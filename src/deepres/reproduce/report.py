"""Report pieces shared by the experiments: markdown tables of ours vs the paper."""

from __future__ import annotations

DATA_CAVEAT = (
    "Our CIFAR-10 is the JPEG re-encode of the official images in `../shared/data/cifar10-jpeg.tar.xz` "
    "(the same 50,000 + 10,000 images, lossy-compressed once), not the official PNG-exact pickles."
)

SMALL_NOTE = " The small budget (a few dozen iterations on the embedded sample) checks the machinery, not the paper."


def small_note(budget: str) -> str:
    return SMALL_NOTE if budget == "small" else ""


def missing_note(missing: list[str]) -> str:
    """What a report made with ``--no-train`` leaves out: runs not finished in the store yet."""
    if not missing:
        return ""
    return f"\n**Partial report**: not yet run at this budget: {', '.join(missing)} (run without `--no-train`).\n"


def compare(claim: str, values: dict[str, float], subject: str, other: str, lower: bool, unit: str = " %",
            digits: int = 2) -> list[str]:  # fmt: skip
    """A findings row: does net ``subject`` end lower (or higher) than net ``other`` in ``values``?"""
    if subject not in values or other not in values:
        return [claim, "not yet run", "-"]
    holds = values[subject] < values[other] if lower else values[subject] > values[other]
    ours = f"{values[subject]:.{digits}f}{unit} vs {values[other]:.{digits}f}{unit}"
    return [claim, ours, "yes" if holds else "NO"]


def fmt(value: object) -> str:
    """Cells as given (round before), '-' for none."""
    return "-" if value is None else str(value)


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    if not rows:
        return "No run of this table has finished at this budget yet."
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def difference(ours: float | None, paper: float | None, digits: int = 2) -> str:
    if ours is None or paper is None:
        return "-"
    return f"{ours - paper:+.{digits}f} ({100 * (ours - paper) / paper:+.1f} %)"
