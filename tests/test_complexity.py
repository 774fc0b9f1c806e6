"""Parameters and multiply-adds, counted from the real modules, against the paper's figures."""

import json

import pytest

from conftest import cli
from deepres.analysis.complexity import complexity

# (name, params in M at the paper's precision, multiply-adds in G or None); He et al. 2015, Tables 1, 6.
PAPER = [
    ("resnet18", 11.7, 1.8),
    ("resnet34", 21.8, 3.6),
    ("resnet50", 25.6, 3.8),
    ("resnet101", 44.5, 7.6),
    ("resnet152", 60.2, 11.3),
    ("vgg19", 143.7, 19.6),
    ("resnet20", 0.27, None),
    ("resnet32", 0.46, None),
    ("resnet44", 0.66, None),
    ("resnet56", 0.85, None),
    ("resnet110", 1.7, None),
    ("resnet1202", 19.4, None),
]


@pytest.mark.parametrize("name, params_m, macs_g", PAPER)
def test_counts_match_the_paper(name, params_m, macs_g):
    c = complexity(name)
    decimals = len(repr(params_m).split(".")[1])
    assert round(c.params / 1e6, decimals) == params_m
    assert c.params_match()
    if macs_g is not None:
        assert abs(c.macs / 1e9 - macs_g) / macs_g < 0.03


def test_plain34_multiply_adds_match_fig3():
    assert abs(complexity("plain34").macs / 1e9 - 3.6) / 3.6 < 0.03


@pytest.mark.parametrize(
    "name, layers",
    [
        ("resnet18", 18),
        ("resnet50", 50),
        ("resnet152", 152),
        ("resnet20", 20),
        ("resnet110", 110),
        ("plain34", 34),
        ("vgg19", 19),
    ],
)
def test_weight_layers_count_as_the_paper_does(name, layers):
    assert complexity(name).weight_layers == layers


def test_counting_follows_the_options():
    v1, v15 = complexity("resnet50"), complexity("resnet50", stride_in_3x3=True)
    assert v1.params == v15.params and v15.macs > v1.macs  # v1.5's 3x3 runs at full resolution
    a, c = complexity("resnet20", shortcut="A"), complexity("resnet20", shortcut="C")
    assert c.params > a.params and c.macs > a.macs
    # Multiply-adds scale with the input area.
    assert complexity("resnet18", input_size=448).macs == pytest.approx(4 * complexity("resnet18").macs, rel=0.01)


def test_resnet20_multiply_adds_by_hand():
    # conv1: 32*32*16*27; stage1: 6 convs of 32*32*16*144; stage2: first conv 16*16*32*144, then 5 of
    # 16*16*32*288; stage3 likewise at 8x8x64; fc: 64*10. Option A shortcuts cost nothing.
    expected = (
        32 * 32 * 16 * 27 + 6 * 32 * 32 * 16 * 144 + 16 * 16 * 32 * (144 + 5 * 288) + 8 * 8 * 64 * (288 + 5 * 576) + 640
    )
    assert complexity("resnet20").macs == expected


def test_summary_command_prints_the_paper_table():
    result = cli("summary")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert {"resnet18", "resnet152", "resnet20", "resnet1202", "vgg19", "plain34"} <= set(lines)
    assert "11.69" in lines["resnet18"] and "1.8141" in lines["resnet18"]


def test_summary_formats_and_options():
    rows = json.loads(cli("summary", "resnet5*", "--format", "json").stdout)
    assert [r["model"] for r in rows] == ["resnet50", "resnet50d", "resnet56"]
    csv = cli("summary", "resnet20", "--option", "shortcut=C", "--format", "csv").stdout.splitlines()
    assert csv[0].startswith("model,layers,input,params_M") and csv[1].startswith("resnet20,20,32,")
    md = cli("summary", "resnet18", "--input-size", "112", "--format", "markdown").stdout
    assert md.startswith("| model |") and "| 112 |" in md


def test_summary_bad_input_is_one_line_error():
    for args in (["summary", "resnet21"], ["summary", "resnet20", "--option", "nope=1"]):
        result = cli(*args)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert "error:" in result.stderr
