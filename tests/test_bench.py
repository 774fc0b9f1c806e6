"""The benchmark runs end to end (a smoke run: one round, smallest nets). Its speed targets are
checked by `deepres bench` itself on a quiet machine, never by a timed unit test."""

import re

from conftest import load_bench, run_cli


def test_bench_quick_prints_side_by_side_ratios():
    result = run_cli("bench", "--quick", "--format", "csv", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert re.search(r"conv peak .*: fp32 \d+ GFLOP/s, bf16 \d+ GFLOP/s", out)
    train = next(line for line in out.splitlines() if line.startswith("train,resnet20,128,"))
    infer = next(line for line in out.splitlines() if line.startswith("infer,resnet18,1,"))
    # reference img/s, deepres img/s and their ratio: measured, positive, and consistent
    ref, ours, ratio = (float(v) for v in train.split(",")[3:6])
    assert ref > 0 and ours > 0 and abs(ratio - ours / ref) < 0.02
    assert float(infer.split(",")[3]) > 0


def test_share_of_peak_is_never_printed_above_100_percent():
    bench = load_bench()
    bench.PEAK["bf16"] = 232.0  # timed while the machine was busy: half its real 465
    assert bench.share_of_peak(116.0, "bf16") == 50.0
    assert bench.share_of_peak(300.0, "bf16") == "over 100 (peak timed low: 232 GFLOP/s)"


def test_time_to_accuracy_comes_from_the_committed_logs(tmp_path):
    import json
    import shutil

    from conftest import ROOT

    bench = load_bench()
    results = tmp_path / "results"
    run = results / "paper-schedule" / "runs" / "resnet20-s0"
    shutil.copytree(ROOT / "results" / "paper-schedule" / "runs" / "resnet20-s0", run)
    timed = [{"model": "resnet20", "reference img/s": 50.0, "deepres img/s": 100.0, "deepres x ref": 2.0}]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r["val_error"] = max(r["val_error"], 9.0)  # as if it had never reached the paper's 8.75 %
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (row,) = bench.time_to_accuracy(timed, results)
    assert row["target val error %"] == 8.75 and row["images to target (M)"] == "not reached (best 9.00 %)"
    rows[19]["val_error"] = 8.5  # as if it had reached it at epoch 20
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (row,) = bench.time_to_accuracy(timed, results)
    images = rows[19]["step"] * 128
    assert row["images to target (M)"] == round(images / 1e6, 2) and row["minutes here"] == round(images / 6000, 1)
    assert bench.time_to_accuracy([{**timed[0], "model": "resnet56"}], results) == []

    other = results / "cifar" / "runs" / "resnet20-s0"
    shutil.copytree(run, other)  # the same run in two reports counts once ...
    assert len(bench.time_to_accuracy(timed, results)) == 1
    recipe = other / "recipe.toml"  # ... but another recipe's run of the same name is another run
    recipe.write_text(recipe.read_text().replace('name = "cifar-paper"', 'name = "cifar-quarter"'))
    assert [r["recipe"] for r in bench.time_to_accuracy(timed, results)] == ["cifar-quarter", "cifar-paper"]
    # A run on all 50k (no validation split, no validation curve) is not counted, nor fails the bench.
    all50k = ROOT / "results" / "ablation" / "runs" / "resnet20-all50k-s0"
    shutil.copytree(all50k, results / "ablation" / "runs" / all50k.name)
    assert len(bench.time_to_accuracy(timed, results)) == 2
