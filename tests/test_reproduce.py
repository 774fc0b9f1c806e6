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


def test_training_experiments_share_their_runs(tmp_path):
    """Small budget: plain-20/56 and ResNet-20/56 on the embedded sample, trained once for both
    the degradation figure and the CIFAR table."""
    store, out = tmp_path / "runs", tmp_path / "results"
    first = run_cli("reproduce", "degradation", "--out", out, "--runs", store, timeout=1800)
    assert first.returncode == 0, first.stderr[-2000:]
    report = (out / "degradation" / "report.md").read_text()
    assert (out / "degradation" / "fig6.png").read_bytes()[:4] == b"\x89PNG"
    assert "plain56 ends with higher training error than plain20" in report
    assert "resnet56 ends with lower test error than resnet20" in report
    runs = sorted(store.glob("*/*/test.json"))
    assert [p.parent.name for p in runs] == ["plain20-s0", "plain56-s0", "resnet20-s0", "resnet56-s0"]
    assert (out / "degradation" / "runs" / "resnet56-s0" / "metrics.jsonl").is_file()  # the logs it used
    stamps = [p.stat().st_mtime_ns for p in runs]

    second = run_cli("reproduce", "cifar", "--out", out, "--runs", store, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert [p.stat().st_mtime_ns for p in sorted(store.glob("*/*/test.json"))] == stamps  # reused, not retrained
    table = (out / "cifar" / "report.md").read_text()
    assert "| resnet20 | 20 | 0.27 |" in table and "| 8.75 |" in table and "| 8.27 |" in table
    assert "| plain56 | 56 |" in table
