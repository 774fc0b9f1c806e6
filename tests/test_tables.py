"""Tables print every column, even one that only a later row has."""

import json

from deepres.tables import render


def test_columns_are_the_union_of_the_rows_keys():
    rows = [{"model": "resnet18", "img/s": 21.0}, {"model": "resnet50", "img/s": 7.7, "met": "no"}]
    table = render(rows).splitlines()
    assert table[0].split() == ["model", "img/s", "met"] and table[2].split() == ["resnet18", "21", "-"]
    assert render(rows, "csv").splitlines() == ["model,img/s,met", "resnet18,21.0,", "resnet50,7.7,no"]
    assert "| resnet50 | 7.7 | no |" in render(rows, "markdown")
    assert json.loads(render(rows, "json")) == rows


def test_a_long_description_wraps_under_its_column_and_loses_no_word():
    """`deepres recipe list` on an 60-column terminal: each line fits, continuation lines start under
    the description column, and the words read back are the description's, hyphenated words whole."""
    text = "one-cycle Nesterov SGD on the 45k/5k split with per-pixel mean subtraction, " * 3
    rows = [{"recipe": "cifar-quarter", "description": text.strip()}, {"recipe": "sample", "description": "short"}]
    lines = render(rows, width=60).splitlines()
    assert all(len(line) <= 60 for line in lines)
    start = lines[0].index("description")
    body = [line for line in lines[2:] if not line.startswith("sample")]
    assert body[0].startswith("cifar-quarter") and all(line[:start].isspace() for line in body[1:])
    assert " ".join(line[start:].strip() for line in body).split() == text.split()
    assert render(rows) == render(rows, width=10_000)  # wide enough: one line per row, as without a width
    assert lines[-1].split() == ["sample", "short"]
