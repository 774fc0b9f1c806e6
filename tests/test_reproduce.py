"""`deepres reproduce`: the paper's experiments as commands, writing reports from real counts and runs."""

from conftest import run_cli


def test_complexity_report_matches_the_paper(tmp_path):
    result = run_cli("reproduce", "complexity", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "complexity"
    report = (folder / "report.md").read_text()
    assert str(folder / "report.md") in result.stdout
    assert (folder / "fig3_complexity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # counted, not copied: each row carries our figure beside the paper's
    assert "| resnet50 | 50 | 25.56 | 25.6 |" in report and "| 3.86 | 3.8 |" in report
    assert "| resnet1202 | 1202 | 19.421 | 19.4 | yes |" in report and "| NO |" not in report
    assert "| VGG-19 | 143.7 | 19.63 | 19.6 |" in report


def test_unknown_experiment_is_a_one_line_error(tmp_path):
    result = run_cli("reproduce", "imagenet-in-a-minute", "--out", tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "unknown experiment 'imagenet-in-a-minute'" in result.stderr
