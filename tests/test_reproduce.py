"""`deepres reproduce`: the paper's experiments as commands, writing reports from real counts and runs."""

import dataclasses
import json
import re
import shutil
import tomllib

import pytest
from PIL import Image

from conftest import ROOT, cli, missing
from deepres.errors import DeepresError

# The data the committed full-budget runs name: the pixel-exact archive.
LOSSLESS_DATA = "../shared/data/cifar10-lossless.tar.xz"
JPEG_DATA = "../shared/data/cifar10-jpeg.tar.xz"


def test_complexity_report_matches_the_paper(tmp_path):
    result = cli("reproduce", "complexity", "--out", tmp_path)
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
    result = cli("reproduce", "imagenet-in-a-minute", "--out", tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "unknown experiment 'imagenet-in-a-minute'" in result.stderr


def test_every_experiment_is_one_contract_and_named_in_the_help(tmp_path):
    from deepres.reproduce import EXPERIMENTS
    from deepres.reproduce.experiment import Experiment

    assert all(isinstance(e, Experiment) and e.summary for e in EXPERIMENTS.values())
    shown = cli("reproduce", "--help").stdout
    assert all(name in shown for name in EXPERIMENTS)
    counted = cli("reproduce", "complexity", "--data", "cifar10", "--out", tmp_path)
    assert counted.returncode == 2 and "--data: complexity trains nothing" in counted.stderr


def test_training_experiments_share_their_runs(tmp_path, tiny_cifar):
    """Small budget (on a 640-image slice of the sample: the machinery, not the paper): plain-20/56 and
    ResNet-20/56 trained once for the degradation figure, the CIFAR table, the responses figure and
    (option A) the shortcuts table."""
    store, out, data = tmp_path / "runs", tmp_path / "results", ["--data", tiny_cifar]
    first = cli("reproduce", "degradation", *data, "--out", out, "--runs", store, timeout=1800)
    assert first.returncode == 0, first.stderr[-2000:]
    report = (out / "degradation" / "report.md").read_text()
    assert (out / "degradation" / "fig6.png").read_bytes()[:4] == b"\x89PNG"
    assert "plain56 ends with higher training error than plain20" in report
    assert "resnet56 ends with lower test error than resnet20" in report
    # where each run ended: train, val, test error, epochs, minutes
    for net in ("plain20", "plain56", "resnet20", "resnet56"):
        assert re.search(rf"\| {net} \| [\d.]+ \| [\d.]+ \| [\d.]+ \| 1 \| [\d.]+ \|", report), net
    runs = sorted(store.glob("*/*/test.json"))
    assert [p.parent.name for p in runs] == ["plain20-s0", "plain56-s0", "resnet20-s0", "resnet56-s0"]
    assert (out / "degradation" / "runs" / "resnet56-s0" / "metrics.jsonl").is_file()  # the logs it used
    stamps = [p.stat().st_mtime_ns for p in runs]

    second = cli("reproduce", "cifar", *data, "--out", out, "--runs", store, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert [p.stat().st_mtime_ns for p in sorted(store.glob("*/*/test.json"))] == stamps  # reused, not retrained
    table = (out / "cifar" / "report.md").read_text()
    assert "| resnet20 | 20 | 0.27 |" in table and "| 8.75 |" in table and "| 8.27 |" in table
    assert "| plain56 | 56 |" in table

    third = cli("reproduce", "responses", *data, "--out", out, "--runs", store, timeout=600)
    assert third.returncode == 0, third.stderr[-2000:]
    assert [p.stat().st_mtime_ns for p in sorted(store.glob("*/*/test.json"))] == stamps  # measured, not retrained
    folder = out / "responses"
    assert (folder / "fig7.png").read_bytes()[:4] == b"\x89PNG"
    stds = json.loads((folder / "responses.json").read_text())
    assert {k: len(v) for k, v in stds.items()} == {"plain20": 19, "plain56": 55, "resnet20": 19, "resnet56": 55}
    assert all(s > 0 for v in stds.values() for s in v)
    report = (folder / "report.md").read_text()
    assert "resnet20 responds more weakly than plain20" in report and "| plain56 | 55 |" in report
    # each run logs its own measurement, named by layer, beside its other logs in the report
    logged = json.loads((folder / "runs" / "resnet56-s0" / "responses.json").read_text())["std"]
    assert list(logged.values()) == stds["resnet56"] and "layer3.8.conv2" in logged
    assert (store / "cifar-10-batches-py-sample-small" / "resnet56-s0" / "responses.json").is_file()
    # from the logs alone (no store): a finished run that logged no measurement is named, not dropped
    logs = tmp_path / "logs-only"
    shutil.copytree(folder / "runs", logs / "responses" / "runs")
    (logs / "responses" / "runs" / "plain56-s0" / "responses.json").unlink()
    remade = cli("reproduce", "responses", *data, "--no-train", "--out", logs, "--runs", tmp_path / "empty-store")
    assert remade.returncode == 0, remade.stderr[-2000:]
    report = (logs / "responses" / "report.md").read_text()
    assert "**Not measured**: plain56: finished, but neither the checkpoint nor a logged responses.json" in report
    assert "| plain20 | 19 |" in report and "| plain56 |" not in report
    assert set(json.loads((logs / "responses" / "responses.json").read_text())) == set(stds) - {"plain56"}

    # --no-train: a partial report from what the store holds (ResNet-20 option A), naming the rest
    partial = cli("reproduce", "shortcuts", *data, "--no-train", "--out", tmp_path / "partial", "--runs", store)
    assert partial.returncode == 0, partial.stderr[-2000:]
    assert [p.stat().st_mtime_ns for p in sorted(store.glob("*/*/test.json"))] == stamps  # nothing trained
    text = (tmp_path / "partial" / "shortcuts" / "report.md").read_text()
    assert "| resnet20 | A | 0.270 |" in text and "| resnet20 | B |" not in text
    assert "not yet run at this budget: resnet20 B, resnet20 C, resnet18 A, resnet18 B, resnet18 C" in text
    assert "none yet (no net has two options finished)" in text and "| resnet18 |" not in text
    assert "![Training curves per shortcut option](shortcuts.png)" in text

    fourth = cli("reproduce", "shortcuts", *data, "--out", out, "--runs", store, timeout=1800)
    assert fourth.returncode == 0, fourth.stderr[-2000:]
    runs = {p.parent.relative_to(store).as_posix() for p in store.glob("*/*/test.json")}
    new = {f"cifar-10-batches-py-{group}" for group in ("sample-small/resnet20-B-s0", "sample-small/resnet20-C-s0",
           "imagenet-quarter-small/resnet18-A-s0", "imagenet-quarter-small/resnet18-B-s0",
           "imagenet-quarter-small/resnet18-C-s0")}  # fmt: skip
    assert len(runs) == 9 and new <= runs  # option A of ResNet-20 is the run above
    recipe = tomllib.loads((store / "cifar-10-batches-py-imagenet-quarter-small/resnet18-C-s0/recipe.toml").read_text())
    assert recipe["model_options"] == {"widths": [32, 64, 128, 256], "stem_width": 32, "shortcut": "C"}
    assert recipe["crop"] == 56 and recipe["augment"] == "imagenet"
    table = (out / "shortcuts" / "report.md").read_text()
    # counted per option: A adds no parameters, B projects where the shape changes, C everywhere
    assert (
        "| resnet20 | A | 0.270 |" in table
        and "| resnet20 | B | 0.272 |" in table
        and "| resnet20 | C | 0.284 |" in table
    )
    assert "| resnet18 | C | " in table and "| 24.19 |" in table
    assert re.search(r"Options from lowest to highest test error: resnet20: [ABC] < [ABC] < [ABC]; resnet18: ", table)
    with Image.open(out / "shortcuts" / "shortcuts.png") as figure:  # one panel per net: two panels
        assert figure.width > 2 * figure.height


def test_paper_schedule_report(tmp_path):
    """Small budget: ResNet-20 (2 seeds), plain-20 and ResNet-20 on all the training images, with the
    paper's schedule shape (two lr drops) in 40 iterations on the embedded sample."""
    store, out = tmp_path / "runs", tmp_path / "results"
    empty = cli("reproduce", "paper-schedule", "--no-train", "--out", out, "--runs", store)
    assert empty.returncode == 0, empty.stderr[-2000:]
    text = (out / "paper-schedule" / "report.md").read_text()
    missing = "resnet20 seed 0, resnet20 seed 1, plain20 seed 0, resnet20 (trained on all 50k) seed 0"
    assert f"not yet run at this budget: {missing}" in text
    assert "| ResNet-20 within 0.5 points of the paper's 8.75 % | not yet run | - |" in text

    result = cli("reproduce", "paper-schedule", "--out", out, "--runs", store, timeout=1200)
    assert result.returncode == 0, result.stderr[-2000:]
    folder = out / "paper-schedule"
    assert (folder / "fig6.png").read_bytes()[:4] == b"\x89PNG"
    runs = store / "cifar10-sample-cifar-paper-small"
    assert sorted(p.parent.name for p in runs.glob("*/test.json")) == [
        "plain20-s0", "resnet20-s0", "resnet20-s1", "resnet20-trainval-s0"]  # fmt: skip
    assert sorted(p.name for p in (folder / "runs").iterdir()) == sorted(p.name for p in runs.iterdir())
    recipe = tomllib.loads((runs / "resnet20-trainval-s0" / "recipe.toml").read_text())
    assert recipe["val_split"] == 0 and recipe["milestones"] == [20, 30] and recipe["iterations"] == 40
    lrs = [json.loads(line)["lr"] for line in (runs / "resnet20-s1" / "metrics.jsonl").read_text().splitlines()]
    assert lrs[-1] == pytest.approx(0.001)  # both drops taken
    report = (folder / "report.md").read_text()
    errors = [json.loads((runs / f"resnet20-s{s}" / "test.json").read_text())["test"]["top1_error"] for s in (0, 1)]
    row = re.search(r"\| resnet20 \| 20 \| 0, 1 \| ([\d.]+), ([\d.]+) \| ([\d.]+) \+- ([\d.]+) \| 8.75 \|", report)
    assert row and [float(row[1]), float(row[2])] == pytest.approx(errors, abs=0.005)
    assert float(row[3]) == pytest.approx(sum(errors) / 2, abs=0.005)
    assert "| resnet20 (trained on all 50k) | 20 | 0 |" in report and "| plain20 | 20 | 0 |" in report
    assert "(2 seeds)" in report and "Data: `cifar10-sample`." in report and "not yet run at this" not in report
    assert re.search(r"^\| plain20 \|.* \| (fp32|bf16) \|$", report, re.M)  # the precision it trained in


def test_ablation_adds_one_technique_at_a_time(tmp_path, tiny_cifar):
    """Small budget on the 640-image slice: each step's run differs from the one before in exactly
    the recipe fields of the technique it adds; the network never changes; the table reads the final
    validation error of each run. The full budget stays within a quarter of the paper's images."""
    from deepres.models import create_model
    from deepres.reproduce.ablation import (
        EIGHTH,
        EPOCHS,
        RECIPE,
        found,
        kept_before,
        left_out,
        on_all_data,
        plan,
        tag,
        without_tag,
    )
    from deepres.reproduce.runs import HOW_FIELDS, RESOLVED_AWAY, run_dir

    store, out = tmp_path / "runs", tmp_path / "results"
    done = cli("reproduce", "ablation", "--data", tiny_cifar, "--out", out, "--runs", store, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    folder = out / "ablation"
    assert (folder / "images_to_error.png").read_bytes()[:4] == b"\x89PNG"
    report = (folder / "report.md").read_text()
    steps = plan("small", str(tiny_cifar))
    recipes = []
    for i, (step, b) in enumerate(steps):
        run = folder / "runs" / run_dir(store, b, "resnet20", 0, tag(i, step, b)).name
        recipes.append(tomllib.loads((run / "recipe.toml").read_text()))
        val = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["val_error"]
        assert f"| {i}. {step.tag} | {step.adds} | {'yes' if step.kept else 'no'} | {val:.2f} |" in report
    assert not all(step.kept for step, _ in steps)  # so the loop below checks a step not kept is left out
    for i in range(1, len(steps)):
        # (the named recipe's overrides for the deeper nets change nothing ResNet-20 trains)
        changed = (
            {k for k in recipes[i] if recipes[i][k] != recipes[kept_before(steps, i)][k]} - HOW_FIELDS - RESOLVED_AWAY
        )
        assert changed and changed <= set(steps[i][0].changes), (i, changed)
    assert {r["model"] for r in recipes} == {"resnet20"} and "not reached" in report
    # the EMA step changes only the weights reported: its run trained exactly as the kept step before it
    ema = next(i for i, (step, _) in enumerate(steps) if step.tag == "ema")
    same = f"its run (seed 0) trained exactly as step {kept_before(steps, ema)}'s: equal training loss and error"
    assert f"Step {ema} (ema) changes only the weights reported; {same}" in report
    # the last kept step is the named recipe found, and its runs are that recipe's plain store runs
    f = found(steps)
    assert recipes[f]["name"] == RECIPE and steps[f][1].recipe == RECIPE
    assert all(b.recipe != RECIPE for i, (_, b) in enumerate(steps) if i != f)
    assert (run_dir(store, steps[f][1], "resnet20", 0) / "test.json").is_file()
    assert run_dir(store, steps[f][1], "resnet20", 0).name == "resnet20-s0"
    # the recipe found without a step marked leave_one_out: only that step's fields go back
    for i, b in left_out(steps):
        without = folder / "runs" / run_dir(store, b, "resnet20", 0, without_tag(i, steps[i][0])).name
        logged = tomllib.loads((without / "recipe.toml").read_text())
        assert {k for k in logged if logged[k] != recipes[f][k]} - HOW_FIELDS == set(steps[i][0].changes)
        val = json.loads((without / "metrics.jsonl").read_text().splitlines()[-1])["val_error"]
        assert f"| {i}. {steps[i][0].tag} | {val:.2f} | {val:.2f} |" in report
    # the recipe found, also on all the training images: only the split and the epochs change
    whole = tomllib.loads((folder / "runs" / "resnet20-all50k-s0" / "recipe.toml").read_text())
    assert {k for k in whole if whole[k] != recipes[f][k]} <= {"val_split", "epochs", "warmup"}
    assert whole["val_split"] == 0
    error = json.loads((folder / "runs" / "resnet20-all50k-s0" / "test.json").read_text())["test"]["top1_error"]
    assert re.search(
        rf"\| the same on all the training images \| 0 \| {error:.2f} \| {error:.2f} \| [+-][\d.]+ \| needs 2 seeds \|",
        report,
    )
    eighth = tomllib.loads((folder / "runs" / "resnet20-all50k-eighth-s0" / "recipe.toml").read_text())
    assert {k for k in eighth if eighth[k] != whole[k]} == {"epochs", "warmup"} and eighth["epochs"] == 0.5
    assert "| the same on all the training images for an eighth of the paper's images | 0 |" in report

    full = [b.resolved_recipe() for _, b in plan("full", None)]
    assert plan("full", None)[f][1].overrides == ()  # at the full budget, exactly the named recipe
    paper = 64_000 * 128

    def images(r):  # the steps of full batches (an epoch's last partial one is dropped) times the batch
        return round(r.epochs * ((50_000 - r.val_split) // r.batch_size)) * r.batch_size

    assert all(r.epochs == EPOCHS["full"] and images(r) <= paper / 4 for r in full)
    on_all = on_all_data("full", plan("full", None)[f][1]).resolved_recipe()
    assert on_all.val_split == 0 and images(on_all) <= paper / 4 and on_all.warmup == on_all.epochs / 5
    assert images(on_all_data("full", plan("full", None)[f][1], EIGHTH).resolved_recipe()) <= paper / 8
    # every step's first seed, or as many as the step asks for; the recipe found, two
    full_steps = plan("full", None)
    seeds = [(0, 1) if i == f else (0, 1)[: step.seeds] for i, (step, _) in enumerate(full_steps)]
    assert [b.seeds for _, b in full_steps] == seeds
    assert any(s.seeds == 2 for s, _ in full_steps)  # the steps one seed could not decide
    net = sum(p.numel() for p in create_model("resnet20").parameters())
    assert all(sum(p.numel() for p in create_model("resnet20", **r.model_options).parameters()) == net for r in full)


def test_depth_compares_each_candidate_with_the_recipes_run(tmp_path, tiny_cifar):
    """Small budget on the 640-image slice: each candidate's ResNet-32 run differs from the recipe's in
    exactly the fields it changes; the table reads both runs' final validation errors."""
    from deepres.reproduce.depth import CANDIDATES, NET
    from deepres.reproduce.runs import HOW_FIELDS

    store, out = tmp_path / "runs", tmp_path / "results"
    done = cli("reproduce", "depth", "--data", tiny_cifar, "--out", out, "--runs", store, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    folder = out / "depth"
    report = (folder / "report.md").read_text()
    assert (folder / "depth.png").read_bytes()[:4] == b"\x89PNG" and "Partial report" not in report
    base = folder / "runs" / f"{NET}-s0"
    recipe = tomllib.loads((base / "recipe.toml").read_text())
    val = json.loads((base / "metrics.jsonl").read_text().splitlines()[-1])["val_error"]
    assert recipe["model"] == NET and f"| the recipe as the ablation left it | {val:.2f} | - |" in report
    for c in CANDIDATES:
        run = folder / "runs" / f"{NET}-{c.tag}-s0"
        logged = tomllib.loads((run / "recipe.toml").read_text())
        assert {k for k in logged if logged[k] != recipe[k]} - HOW_FIELDS == set(c.changes)
        mine = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["val_error"]
        assert f"| {c.tag} | {c.says} | {mine:.2f} | {mine - val:+.2f} |" in report
    assert "Adopted for the nets deeper" in report or "No candidate validates" in report


def test_depth_compares_with_the_recipe_as_the_ablation_left_it():
    """Whatever the search adopted into the recipe's per-net overrides, its runs stay the ones it
    compared: the recipe without the fields it searches, for every net (ResNet-110 keeps its warm-up)."""
    from deepres.reproduce.depth import NET, SEARCHED, as_searched
    from deepres.reproduce.runs import full, planned_recipe

    now, before = full(LOSSLESS_DATA), as_searched(full(LOSSLESS_DATA))
    for net in (NET, "resnet20", "resnet110", "plain56"):
        was, is_now = (planned_recipe(b, net, 0).resolved() for b in (before, now))
        assert all(getattr(was, k) == getattr(before.resolved_recipe(), k) for k in SEARCHED)
        assert (was.warmup_lr, was.warmup_until_error) == (is_now.warmup_lr, is_now.warmup_until_error)
    assert planned_recipe(before, "resnet110", 0).resolved().warmup_lr == 0.01


def test_depth_reads_the_runs_from_before_from_their_logs_alone(tmp_path):
    """The store holds the runs of the recipe as it is now, under the names the runs from before had
    (ResNet-110 training, say): the depth report reads the runs from before from its logs, and the
    run in training neither stops it nor stands in for one of them."""
    from deepres.reproduce.runs import full, planned_recipe, run_dir

    if not (ROOT / LOSSLESS_DATA).is_file():
        missing(f"{ROOT / LOSSLESS_DATA} (the reports name their data by its checksum)")
    out, store = tmp_path / "results", tmp_path / "runs"
    for logged in (ROOT / "results").glob("*/runs"):
        shutil.copytree(logged, out / logged.parent.name / "runs")
    for net in ("resnet110", "resnet44"):
        now = run_dir(store, full(LOSSLESS_DATA), net, 0)
        now.mkdir(parents=True)
        (now / "recipe.toml").write_text(planned_recipe(full(LOSSLESS_DATA), net, 0).resolved().to_toml())
    result = cli("reproduce", "depth", "--budget", "full", "--data", LOSSLESS_DATA, "--no-train",
                 "--out", out, "--runs", store, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "depth" / "report.md").read_text() == (ROOT / "results" / "depth" / "report.md").read_text()


def test_depth_adopts_a_candidate_only_by_the_margin(tmp_path):
    from deepres.reproduce.depth import CANDIDATES, MARGIN, adopted

    def run(name, val):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "val_error": val}) + "\n")
        return tmp_path / name

    base = run("base", 8.0)
    first, second = (c.tag for c in CANDIDATES)
    assert adopted(base, {first: run("a", 7.9)}) == ("", "No decision yet: a run has not finished.")
    near = {first: run("b", 8.0 - MARGIN + 0.01), second: run("c", 8.4)}
    assert adopted(base, near)[0] == "" and "the recipe stays as it is for every depth" in adopted(base, near)[1]
    far = {first: run("d", 8.0 - MARGIN - 0.01), second: run("e", 8.0 - MARGIN - 0.2)}
    assert adopted(base, far)[0] == second


def test_a_step_not_kept_is_left_out_of_the_steps_after_it(monkeypatch):
    """A technique that did not help is tried (its own run adds it to the kept steps before it) and
    then left out: the steps after it and the recipe found (the last kept step) do not have it."""
    from deepres.reproduce import ablation

    real = ablation.steps

    def with_one_dropped(epochs):
        steps = real(epochs)
        i = [s.tag for s in steps].index("smoothing")
        steps[i] = dataclasses.replace(steps[i], kept=False)
        return steps

    monkeypatch.setattr(ablation, "steps", with_one_dropped)
    monkeypatch.setattr(ablation, "as_named", lambda budget: budget)  # the named file holds every step
    planned = ablation.plan("full", None)
    recipes = [b.resolved_recipe() for _, b in planned]
    tags = [s.tag for s, _ in planned]
    i = tags.index("smoothing")
    assert recipes[i].label_smoothing == 0.1 and recipes[i - 1].label_smoothing == 0.0
    assert all(r.label_smoothing == 0.0 for r in recipes[i + 1 :])
    assert recipes[i + 1].weight_decay == 5e-4 and recipes[i + 1].nesterov  # the kept steps' changes stay
    last = ablation.found(planned)  # the last kept step, trained first
    assert planned[last][0].kept and not any(step.kept for step, _ in planned[last + 1 :])
    # the recipe found's seeds and its all-50k runs (the test error it claims) before the other steps
    found, queue = ablation.tag(last, *planned[last]), ablation.queue("full", None)
    assert [(t, b.seeds) for b, t in queue[:4]] == [(found, (0,)), (found, (1,)), ("all50k", (0, 1)),
                                                    ("all50k-eighth", (0, 1))]  # fmt: skip
    assert sorted(t for _, t in queue[4:]) == sorted(ablation.tag(i, *p) for i, p in enumerate(planned) if i != last)

    def last_dropped(epochs):  # then the recipe found is the kept step before it, trained first, with 2 seeds
        steps = real(epochs)
        return [*steps[:-1], dataclasses.replace(steps[-1], kept=False)]

    monkeypatch.setattr(ablation, "steps", last_dropped)
    planned = ablation.plan("full", None)
    before = ablation.kept_before(planned, len(planned) - 1)
    assert ablation.found(planned) == before
    assert ablation.queue("full", None)[0][1] == ablation.tag(before, *planned[before])
    assert planned[before][1].seeds == (0, 1) and planned[-1][1].seeds == (0,)


def test_an_ema_step_whose_training_parts_from_the_step_before_says_where(tmp_path):
    """Runs that should have trained alike (an EMA step and the step before it, same seed) but did
    not: the report names the first epoch that differs and the machines each trained on."""
    from deepres.reproduce.ablation import kept_before, plan, same_training

    planned = plan("small", None)
    ema = next(i for i, (step, _) in enumerate(planned) if step.tag == "ema")
    base = kept_before(planned, ema)
    runs = []
    for name, cpu, losses in (("base", "AMD EPYC", [2.0, 1.5, 1.2]), ("ema", "Intel Xeon", [2.0, 1.5, 1.3])):
        run = tmp_path / name
        run.mkdir()
        (run / "recipe.toml").write_text("seed = 0\n")
        lines = [json.dumps({"train_loss": x, "train_error": 10 * x}) + "\n" for x in losses]
        (run / "metrics.jsonl").write_text("".join(lines))
        segment = {"cpu": cpu, "threads": 1, "precision": "fp32"}
        (run / "env.json").write_text(json.dumps({"segments": [segment]}))
        runs.append(run)
    done = [(base, planned[base][0], [runs[0]]), (ema, planned[ema][0], [runs[1]])]
    assert same_training(planned, done) == [
        f"Step {ema} (ema) changes only the weights reported; its run (seed 0) parts from step {base}'s at "
        "epoch 3 (training loss 1.2000 vs 1.3000, error 12.00 vs 13.00 %); they trained on AMD EPYC, 1 thread(s), "
        "fp32, and on Intel Xeon, 1 thread(s), fp32."
    ]
    assert same_training(planned, done[1:]) == []  # nothing to compare with


def test_a_kept_flag_the_measurements_contradict_is_stated(tmp_path):
    """A step is kept when its mean validation error is below the kept step before it, both over the
    seeds both have run (a paired comparison: a seed only one step has run does not count); the flag
    is set by hand as each run finishes, so the report says where it and the measurements disagree,
    and the committed report says nothing of the kind."""
    from deepres.reproduce.ablation import against_kept_before, kept_against_measured, kept_before, plan

    planned = plan("small", None)
    ema = next(i for i, (step, _) in enumerate(planned) if step.tag == "ema")
    base = kept_before(planned, ema)

    def run(name: str, seed: int, val_errors: list[float]):
        (tmp_path / name).mkdir()
        (tmp_path / name / "recipe.toml").write_text(f"seed = {seed}\n")
        rows = [json.dumps({"epoch": k + 1, "val_error": v}) + "\n" for k, v in enumerate(val_errors)]
        (tmp_path / name / "metrics.jsonl").write_text("".join(rows))
        return tmp_path / name

    base_run = (base, planned[base][0], [run("base-s0", 0, [20.0, 8.1]), run("base-s1", 1, [20.0, 8.3])])
    worse = (ema, planned[ema][0], [run("ema-s0", 0, [12.0, 8.4])])  # the final epoch counts, not the best
    assert kept_against_measured(planned, [base_run, worse]) == [
        f"Step {ema} (ema) is kept, but its validation error is not below step {base}'s (8.40 % against 8.10 %)."
    ]
    better = (ema, dataclasses.replace(planned[ema][0], kept=False), [run("better-s0", 0, [12.0, 8.0])])
    assert kept_against_measured(planned, [base_run, better]) == [
        f"Step {ema} (ema) is not kept, but its validation error is below step {base}'s (8.00 % against 8.10 %)."
    ]
    # The same seeds on both sides: plain means. A base of one seed (8.10 %) against a step of two (8.15 %
    # over both) would make the step look worse; on the seed both ran it is better (8.00 %).
    one_seed_base = (base, planned[base][0], base_run[2][:1])
    two_seeds = (ema, planned[ema][0], [run("two-s0", 0, [12.0, 8.0]), run("two-s1", 1, [12.0, 8.3])])
    assert against_kept_before(planned, [base_run, two_seeds])[ema] == (base, 8.2, 8.15)
    assert against_kept_before(planned, [one_seed_base, two_seeds])[ema] == (base, 8.1, 8.0)
    other_seed = (ema, planned[ema][0], [run("other-s2", 2, [12.0, 8.0])])
    assert kept_against_measured(planned, [base_run, other_seed]) == []  # no seed in common: nothing compared
    assert kept_against_measured(planned, [worse]) == []  # the step before has not run: nothing to say
    committed = (ROOT / "results" / "ablation" / "report.md").read_text()
    assert "is kept, but" not in committed and "is not kept, but" not in committed


def test_a_step_left_out_of_the_recipe_found_is_decided_by_that(tmp_path):
    """A step kept before the steps it is compared with had run (the later steps built on it) is also
    trained as the recipe found without it: only that step's changes go back to the kept step before
    it, with every seed of the recipe found, queued after the recipe found's own runs; and the flag
    follows that comparison, the report saying where it overrules the stepwise one."""
    from deepres.reproduce.ablation import found, kept_against_measured, kept_before, left_out, plan, queue, without_tag

    planned = plan("full", None)
    r = found(planned)
    (i, b), *_ = left_out(planned)
    step, base = planned[i][0], kept_before(planned, i)
    assert step.kept and step.leave_one_out and b.seeds == planned[r][1].seeds == (0, 1)
    with_it, without_it = planned[r][1].resolved_recipe().to_dict(), b.resolved_recipe().to_dict()
    assert {k for k in with_it if with_it[k] != without_it[k]} == set(step.changes)
    assert all(without_it[k] == getattr(planned[base][1].resolved_recipe(), k) for k in step.changes)
    tags = [t for _, t in queue("full", None)]
    assert tags.index(without_tag(i, step)) == 4  # after the recipe found's seeds and its all-50k runs

    def run(name: str, seed: int, val_error: float):
        (tmp_path / name).mkdir()
        (tmp_path / name / "recipe.toml").write_text(f"seed = {seed}\n")
        (tmp_path / name / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "val_error": val_error}) + "\n")
        return tmp_path / name

    done = [(base, planned[base][0], [run("b0", 0, 8.6), run("b1", 1, 8.7)]),
            (i, step, [run("s0", 0, 9.4), run("s1", 1, 8.8)]),
            (r, planned[r][0], [run("f0", 0, 8.0), run("f1", 1, 8.5)])]  # fmt: skip
    stepwise = f"Step {i} ({step.tag}) is kept, but its validation error is not below step {base}'s "
    stepwise += "(9.10 % against 8.65 %)."
    assert kept_against_measured(planned, done) == [stepwise]
    helps = {i: [run("w0", 0, 8.6), run("w1", 1, 8.7)]}
    assert kept_against_measured(planned, done, helps) == [
        f"Step {i} ({step.tag}): its validation error is not below step {base}'s (9.10 % against 8.65 %), but the "
        "recipe found validates at 8.25 % with it and 8.65 % without it (seed(s) 0, 1): kept on that."
    ]
    does_not = {i: [run("x0", 0, 7.9)]}  # paired: seed 0 only, 8.00 % with it
    assert kept_against_measured(planned, done, does_not) == [
        f"Step {i} ({step.tag}) is kept, but the recipe found validates at 8.00 % with it and 7.90 % without it "
        "(seed(s) 0)."
    ]
    assert kept_against_measured(planned, done, {i: [run("y2", 2, 7.0)]}) == [stepwise]  # no shared seed
    # the step before has not run: the leave-one-out alone decides, and says so where it contradicts
    assert kept_against_measured(planned, done[1:], helps) == []
    assert kept_against_measured(planned, done[1:], does_not) == kept_against_measured(planned, done, does_not)


def test_the_ablations_last_step_must_be_the_named_recipe(monkeypatch):
    """A named recipe that drifts from the steps' sum is an error naming the fields, not another run."""
    from deepres.reproduce import ablation

    monkeypatch.setattr(ablation, "RECIPE", "cifar-fast")
    with pytest.raises(DeepresError, match=r"recipe cifar-fast: differs from the ablation's last kept step in .*ema"):
        ablation.plan("full", None)


def test_a_run_another_process_trains_is_left_to_it(tmp_path, tiny_cifar):
    """Two `deepres reproduce` processes share one store: each skips the runs the other holds."""
    from deepres.reproduce.runs import finished_run, run_dir, small
    from deepres.train.rundir import RunDirClaim

    budget = small(str(tiny_cifar))
    out = run_dir(tmp_path, budget, "resnet20", 0)
    claim = RunDirClaim(out)  # as another process's training holds it
    try:
        assert finished_run(tmp_path, [], budget, "resnet20", 0, train=True) is None
    finally:
        claim.release()
    assert not (out / "last.pt").exists() and not (out / "log.txt").exists()  # nothing trained, nothing touched


def test_a_store_run_of_another_recipe_is_never_reused(tmp_path, tiny_cifar):
    """A run in the store under the planned name but trained otherwise (a step of an experiment
    redefined since, say) is a one-line error naming the difference, never a silently wrong row."""
    from deepres.errors import DeepresError
    from deepres.reproduce.runs import finished_run, planned_recipe, run_dir, small

    budget = small(str(tiny_cifar))
    out = run_dir(tmp_path, budget, "resnet20", 0)
    out.mkdir(parents=True)
    (out / "recipe.toml").write_text(planned_recipe(budget, "resnet20", 0).replace(lr=0.05).resolved().to_toml())
    (out / "test.json").write_text('{"test": {"top1_error": 50.0}}')
    with pytest.raises(DeepresError, match=r"trained with another recipe than this experiment plans \(lr = 0.05, "
                       r"planned 0.2\); move it away"):  # fmt: skip
        finished_run(tmp_path, [], budget, "resnet20", 0, train=False)
    (out / "recipe.toml").write_text(planned_recipe(budget, "resnet20", 0).replace(threads=1).resolved().to_toml())
    assert finished_run(tmp_path, [], budget, "resnet20", 0, train=False) == out  # how fast it ran is no difference


def test_reports_name_their_data_by_checksum(tmp_path):
    from deepres.reproduce.report import data_identity, data_note

    archive = tmp_path / "cifar10-lossless.tar.xz"
    archive.write_bytes(b"abc")
    digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    assert data_identity(str(archive)) == f"`cifar10-lossless.tar.xz` (sha256 `{digest}`)"
    assert data_identity("cifar10") == "`cifar10`"
    assert data_note(str(archive)) == f"Data: `cifar10-lossless.tar.xz` (sha256 `{digest}`)."  # not a known archive
    jpeg = ROOT / JPEG_DATA
    if not jpeg.is_file():
        missing(f"{jpeg} (the JPEG CIFAR-10 archive)")
    assert "a JPEG (quality 75) re-encode of the official CIFAR-10 images, not pixel-exact" in data_note(str(jpeg))


def test_compute_minutes_ignore_a_paused_epoch(tmp_path):
    from deepres.reproduce.runs import compute_minutes

    rows = [{"epoch": i + 1, "seconds": s} for i, s in enumerate([150.0, 5196.0, 140.0, 160.0])]  # epoch 2 stopped
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert compute_minutes(tmp_path) == 155.0 * 4 / 60


def test_median_throughput_shows_a_run_that_shared_its_cores(tmp_path):
    from deepres.reproduce.runs import median_throughput

    rates = [300.0, 120.0, 140.0, 310.0, 130.0]  # three of five epochs shared the cores
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"images_per_second": r}) + "\n" for r in rates))
    assert median_throughput(tmp_path) == 140.0


def test_a_net_costs_one_run_and_names_the_machine_that_trained_most_of_it(tmp_path):
    from deepres.reproduce.runs import machine, minutes_per_run

    runs = []
    for seed, (seconds, segments) in enumerate([
        (60.0, [(0, "AVX2", "fp32"), (300, "AVX512", "bf16")]),  # resumed elsewhere for its last 100 steps
        (120.0, [(0, "AVX2", "fp32"), (100, "AVX512", "bf16")]),  # and this one for its last 300
    ]):  # fmt: skip
        run = tmp_path / f"resnet20-s{seed}"
        run.mkdir()
        rows = [{"epoch": e, "step": 100 * e, "seconds": seconds} for e in range(1, 5)]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        segs = [{"step": step, "cpu_capability": kind, "precision": precision} for step, kind, precision in segments]
        (run / "env.json").write_text(json.dumps({"segments": segs}))
        runs.append(run)
    assert minutes_per_run(runs) == "6.0"  # the mean of 4 and 8 minutes, not their sum
    assert machine(runs[:1]) == "AVX2 fp32" and machine(runs[1:]) == "AVX512 bf16"
    assert machine(runs) == "AVX2 fp32, AVX512 bf16"


@pytest.mark.parametrize(
    "experiment", ["cifar", "degradation", "responses", "shortcuts", "paper-schedule", "ablation", "depth"]
)
def test_committed_reports_are_remade_from_their_logs(tmp_path, experiment):
    """The committed full-budget reports rest on the logs committed beside them: with an empty run
    store (no checkpoints at all), `--no-train` remakes each report word for word (the ablation's
    reference curve, the paper's schedule, from that report's logs)."""
    data = LOSSLESS_DATA
    if not (ROOT / data).is_file():
        missing(f"{ROOT / data} (the reports name their data by its checksum)")
    committed = ROOT / "results"
    out = tmp_path / "results"
    for logged in committed.glob("*/runs"):
        shutil.copytree(logged, out / logged.parent.name / "runs")
    result = cli("reproduce", experiment, "--budget", "full", "--data", data, "--no-train",
                     "--out", out, "--runs", tmp_path / "empty-store", cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert not (tmp_path / "empty-store").exists()  # nothing trained
    assert (out / experiment / "report.md").read_text() == (committed / experiment / "report.md").read_text()


def test_a_report_says_what_is_finished_when_it_is_written(tmp_path):
    """Two processes work through one queue: a run the first found held by the second may finish
    before the first writes its report, which then reports it (the queue's last report is whole)."""
    from deepres.reproduce.experiment import Experiment, Report, Request

    finished = {"mine": True, "theirs": False}  # theirs: training in the other process when this one looked
    asked = []

    def make(q: Request) -> Report:
        asked.append(q.train)
        lacks = [n for n, done in finished.items() if not done]
        finished["theirs"] = True  # ... and done by the time this one's own runs are
        return Report("t", "b", lacks)

    path = Experiment("two", True, make).run(Request(tmp_path / "two", "small"))
    assert asked == [True, False] and "Partial report" not in path.read_text()
    asked.clear()
    Experiment("two", True, make).run(Request(tmp_path / "two", "small", train=False))
    assert asked == [False]  # nothing trained, nothing to look at twice


def test_a_report_links_its_logs_once_a_run_has_logged_them(tmp_path):
    """A report with no run finished (an empty store, no earlier logs) has no runs/ folder to link."""
    if not (ROOT / LOSSLESS_DATA).is_file():
        missing(f"{ROOT / LOSSLESS_DATA} (the reports name their data by its checksum)")
    out = tmp_path / "results"
    result = cli("reproduce", "shortcuts", "--budget", "full", "--data", LOSSLESS_DATA, "--no-train",
                 "--out", out, "--runs", tmp_path / "empty-store", cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = (out / "shortcuts" / "report.md").read_text()
    assert "**Partial report**: not yet run at this budget: resnet32 A," in report
    assert not (out / "shortcuts" / "runs").exists() and "Logs: [runs/](runs/)" not in report


def test_only_logs_of_the_same_experiment_stand_in_for_a_run(tmp_path):
    from deepres.reproduce.runs import full, logged_run, small

    logs = tmp_path / "runs"
    shutil.copytree(ROOT / "results" / "cifar" / "runs" / "resnet20-s0", logs / "resnet20-s0")
    budget = full(LOSSLESS_DATA)
    assert logged_run(logs, budget, "resnet20", 0) == logs / "resnet20-s0"
    assert logged_run(logs, full("/elsewhere/cifar10-lossless.tar.xz"), "resnet20", 0) is not None  # same file
    assert logged_run(logs, full(JPEG_DATA), "resnet20", 0) is None  # other data
    assert logged_run(logs, full("cifar10"), "resnet20", 0) is None  # the official pickles: other data
    assert logged_run(logs, small(None), "resnet20", 0) is None  # another recipe
    assert logged_run(logs, budget, "resnet20", 1) is None  # another seed
    assert logged_run(logs, budget, "resnet20", 0, {"shortcut": "B"}, "B") is None  # not logged

    recipe = logs / "resnet20-s0" / "recipe.toml"
    text = recipe.read_text()
    recipe.write_text(re.sub(r"(?m)^checkpoint_every = .*$", "checkpoint_every = 3.0", text))
    assert logged_run(logs, budget, "resnet20", 0) is not None  # how often it saved changes no result
    recipe.write_text(re.sub(r"(?m)^lr = .*$", "lr = 0.1", text))
    assert logged_run(logs, budget, "resnet20", 0) is None  # trained otherwise
    # A field newer than the log (as if it predated `flip`) is the default it was added with ...
    older = re.sub(r"(?m)^flip = .*\n", "", text)
    recipe.write_text(older)
    assert older != text and logged_run(logs, budget, "resnet20", 0) is not None
    recipe.write_text('flip = "alternate"\n' + older)  # ... and a log that says otherwise is another run
    assert logged_run(logs, budget, "resnet20", 0) is None
    # An override for another net changes nothing this one trained; one for this net that the log lacks does.
    recipe.write_text(text + "\n[model_overrides.resnet56]\nweight_decay = 0.00025\n")
    assert logged_run(logs, budget, "resnet20", 0) is not None
    recipe.write_text(text)
    deeper = dataclasses.replace(budget, overrides=(("model_overrides", {"resnet20": {"weight_decay": 2.5e-4}}),))
    assert logged_run(logs, deeper, "resnet20", 0) is None


def test_table6_holds_resnet110_against_the_papers_mean():
    """Table 6 gives ResNet-110 as its best run and the mean of 5 (6.43, 6.61 +- 0.16): a result of
    ours is held against the mean. At the full budget the nets Fig. 6's findings compare train 2 seeds."""
    from deepres.reproduce import cifar

    assert cifar.paper_cell("resnet110") == "6.43 (mean 6.61 +- 0.16)" and cifar.paper_cell("resnet20") == "8.75"
    assert cifar.within(6.95, "resnet110") == "yes"  # 0.34 above the mean, 0.52 above the best run
    assert cifar.within(9.30, "resnet20") == "NO" and cifar.within(8.30, "resnet20") == "yes"
    assert cifar.within(5.0, "plain20") == "-"
    full = cifar.budget_for("full", None)
    assert cifar.seeds_note(full, ["resnet20", "resnet32", "resnet56"]) == "[0] ([0, 1] for resnet20, resnet56)"
    assert cifar.seeds_note(cifar.budget_for("small", None), ["resnet20"]) == "[0]"


def test_shortcuts_name_the_differences_beyond_seed_noise():
    """Single-seed differences from option A beyond Table 6's 0.5-point tolerance are named, with their
    sign, so a reader can tell them from the seed-to-seed wiggle; A itself and a missing A are not."""
    from deepres.reproduce import shortcuts

    rows = [["resnet32", "A", "", "", "7.82", "+0.00"], ["resnet32", "B", "", "", "7.89", "+0.07"],
            ["resnet32", "C", "", "", "8.54", "+0.72"], ["resnet56", "B", "", "", "6.10", "-0.61"],
            ["resnet18", "C", "", "", "20.23", "-"]]  # fmt: skip
    assert shortcuts.beyond_noise(rows).endswith(": resnet32 C +0.72, resnet56 B -0.61.")
    assert shortcuts.beyond_noise(rows[:2]).startswith("No option differs from A by more than 0.5 points")
