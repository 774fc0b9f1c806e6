"""Report pieces shared by the experiments: markdown tables of ours vs the paper."""

from __future__ import annotations

from pathlib import Path

from ..io import sha256
from ..train.recipe import Recipe

# What the archives in ../shared/data are (its README), by sha256: a report says what its data is.
KNOWN_DATA = {
    "a17edd0fcf80019f7288422aa8747176a0c80b65a4610da2f3cf307115e6a63e": "the official CIFAR-10, pixel-exact",
    "90c4f18aab7d45791ea1bb6d23957dbee5c29df52335c4605508721a968932fb": (
        "a JPEG (quality 75) re-encode of the official CIFAR-10 images, not pixel-exact: it costs "
        "accuracy, so its errors are not comparable with the paper's"
    ),
}


def data_identity(data: str) -> str:
    """The data as a reader can check it: a file by its sha256, a dataset by its name."""
    path = Path(data).expanduser()
    return f"`{path.name}` (sha256 `{sha256(path)}`)" if path.is_file() else f"`{data}`"


def data_note(data: str) -> str:
    """'Data: ...', with what the data is where its checksum is known."""
    path = Path(data).expanduser()
    if not path.is_file():
        return f"Data: `{data}`."
    digest = sha256(path)
    what = KNOWN_DATA.get(digest)
    return f"Data: `{path.name}` (sha256 `{digest}`)" + (f", {what}." if what else ".")


def recipe_note(recipe: Recipe) -> str:
    """The recipe in its own words (its ``description``), named."""
    return f"Recipe `{recipe.name}`: {recipe.description}" if recipe.description else f"Recipe `{recipe.name}`."


SMALL_NOTE = " The small budget (a few dozen iterations on the embedded sample) checks the machinery, not the paper."


def small_note(budget: str) -> str:
    return SMALL_NOTE if budget == "small" else ""


def missing_note(missing: list[str]) -> str:
    """What a report leaves out: runs not finished in the store yet (with ``--no-train``, or trained
    by another process at the time)."""
    if not missing:
        return ""
    return f"\n**Partial report**: not yet run at this budget: {', '.join(missing)} (run without `--no-train`).\n"


def compare(claim: str, values: dict[str, float], subject: str, other: str, lower: bool, unit: str = " %",
            digits: int = 2, absent: str = "not yet run") -> list[str]:  # fmt: skip
    """A findings row: does net ``subject`` end lower (or higher) than net ``other`` in ``values``?
    ``absent``: what the row says when either has no value."""
    if subject not in values or other not in values:
        return [claim, absent, "-"]
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
