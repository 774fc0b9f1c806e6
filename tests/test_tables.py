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
