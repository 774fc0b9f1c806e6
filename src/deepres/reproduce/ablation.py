"""The paper's ResNet-20 for a quarter of the paper's training images: starting from the paper's own
procedure at that budget, one training technique added at a time (the network and the test protocol
never change), each step's validation error beside the one before, and the images (and minutes) each
needs to reach the paper's 8.75 %, on one axis with the paper's full schedule."""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..errors import DeepresError
from ..train.recipe import load_recipe
from ..train.rundir import RunDir
from . import paper_schedule
from .cifar import PAPER, mean_std
from .experiment import Experiment, Report, Request
from .paper_schedule import images_seen, precisions
from .report import data_note, markdown_table, small_note
from .runs import (
    FULL_RECIPE,
    Budget,
    final_val_error,
    finished_run,
    images_to_error,
    metrics,
    recipe_differences,
    report_logs,
    run_dir,
    seed_runs,
    test_error,
    val_errors,
)

NET = "resnet20"
TARGET = PAPER[NET]  # the paper's 8.75 %
# 45 epochs of the 45k training images: 2.02 M images, a quarter of the paper's 64k x 128 = 8.19 M.
EPOCHS = {"small": 1, "full": 45}


@dataclass(frozen=True)
class OnAllData:
    """The recipe found, trained on all 50k training images (the 5k held out join them; the paper's
    45k/5k split chose its stopping point, and re-runs commonly train the reported nets on all 50k) for
    ``epochs`` (per budget). No validation images: its test error of the final weights is reported."""

    tag: str
    label: str
    epochs: dict


# At the must, a quarter of the paper's images (41 epochs of 390 batches of 128: 2.05 M), and at
# its target, an eighth (20 epochs: 1.0 M).
QUARTER = OnAllData("all50k", "the same on all the training images", {"small": 1, "full": 41})
EIGHTH = OnAllData("all50k-eighth", "the same on all the training images for an eighth of the paper's images",
                   {"small": 0.5, "full": 20})  # fmt: skip
# The recipe found, by name: the last kept step trains as this recipe, so that its runs are the store's
# runs of the full budget, which Table 6, Fig. 6, Fig. 7 and the shortcuts share.
RECIPE = FULL_RECIPE
SIZE = ("val_split", "batch_size", "epochs", "iterations", "warmup")  # what a budget may set otherwise


def warmup(epochs: float) -> float:
    """The one-cycle steps' rise: the first 20 % of the run's epochs."""
    return epochs / 5


@dataclass(frozen=True)
class Step:
    """One technique added to the kept steps before it: its recipe changes, and whether it is kept (a
    technique that did not help on the validation images stays in the table, tried, and is left out of
    the steps after it and of the recipe found). ``seeds``: how many of the budget's seeds the step
    runs (one, unless one seed could not decide it). ``leave_one_out``: a kept step whose stepwise
    comparison came out against it only after the steps below were built on it is also tried as the
    recipe found without it (with all the budget's seeds); that comparison then decides its flag."""

    tag: str
    adds: str
    changes: dict
    kept: bool = True
    seeds: int = 1
    leave_one_out: bool = False


def steps(epochs: float) -> list[Step]:
    """The ablation for runs of ``epochs``, in order."""
    return [
        Step(
            "paper",
            f"the paper's procedure in {epochs:g} epochs: lr 0.1, / 10 at 50 % and 75 % of the run",
            {"epochs": epochs, "iterations": 0, "milestones": [epochs / 2, epochs * 3 / 4]},
        ),
        Step(
            "onecycle",
            "one-cycle lr: a linear rise to 0.2 over the first 20 %, then a linear fall to 0",
            {"schedule": "onecycle", "lr": 0.2, "warmup": warmup(epochs), "milestones": []},
        ),
        # Smoothing was kept on step 0's measurement (steps 1 and 2 ran later) and steps 4-8 were built on
        # it. 45 epochs, seeds 0 and 1: Nesterov validated at 8.66 and 8.56 %, smoothing after it at 9.40
        # and 8.82 % (test 9.30 and 9.68 %, 8.85 and 9.42 %): worse on validation by 0.50 points, better on
        # test. So the recipe found is also trained without smoothing: whether it earns its place in the
        # recipe the later steps stand on is what decides its flag.
        Step("nesterov", "Nesterov momentum", {"nesterov": True}, seeds=2),
        Step("smoothing", "label smoothing 0.1", {"label_smoothing": 0.1}, seeds=2, leave_one_out=True),
        Step("decay", "weight decay 5e-4 (the paper's 1e-4)", {"weight_decay": 5e-4}),
        Step(
            "alternating-flip",
            "alternating flips: each image flipped by a coin of its own in even epochs, the other way in odd ones",
            {"flip": "alternate"},
            # Seed 0, 45 epochs: validation 8.20 % against step 4's 8.14 % (test 8.59 % against 8.71 %,
            # never a choice): no gain beyond seed noise, so not kept.
            kept=False,
        ),
        Step(
            "ema",
            "the reported weights are an EMA of the trained ones (decay 0.999)",
            {"ema_decay": 0.999},
            # Seed 0, 45 epochs: validation 8.02 % against step 4's 8.14 % (test 8.79 % against 8.71 %,
            # never a choice). Kept: it lowers the validation error (by less than one seed's noise, about
            # 0.4 points on 5,000 images) at no cost to training, which it leaves bit for bit as it was,
            # and mid-run its weights validate far better (epoch 31: 10.44 % against 17.82 %).
        ),
        Step(
            "bn-no-decay",
            "no weight decay on BN scales and shifts",
            {"decay_norm_and_bias": False},
            # Seed 0, 45 epochs: validation 8.52 % against step 6's 8.02 % (test 8.86 % against 8.79 %,
            # never a choice): its training error was lower from epoch 7 on (4.29 % against 4.80 % at the
            # end) and its validation error higher at the end: less regularisation that did not pay, not kept.
            kept=False,
        ),
        Step(
            "zero-init",
            "each block's last BN starts at zero (the block starts as the identity)",
            {"model_options": {"zero_init_residual": True}},
            # Seed 0, 45 epochs: validation 11.48 % against step 6's 8.02 % (test 11.27 % against 8.79 %, never
            # a choice): its training error was higher at every epoch (8.68 % against 4.80 % at the end), so
            # it learned slower rather than overfitting less; not kept. The first whole candidate, which had
            # it, ended at 11.25 % test.
            kept=False,
        ),
    ]


def budget(name: str, data: str | None) -> Budget:
    if name == "small":
        # The embedded sample, one epoch of batch 32 a step: checks the machinery.
        return Budget("small", "cifar-paper", data or "cifar10-sample", (0,), (("val_split", 500), ("batch_size", 32)))
    return Budget("full", "cifar-paper", data or "cifar10", (0, 1))


def plan(budget_name: str, data: str | None) -> list[tuple[Step, Budget]]:
    """Each step with the budget its runs train under: its own changes and those of every kept step
    before it, with the budget's first seed (or its first ``step.seeds``); the recipe found (``found``)
    as that named recipe, with all the budget's seeds."""
    b = budget(budget_name, data)
    kept: dict = dict(b.overrides)
    planned = []
    for step in steps(EPOCHS[budget_name]):
        changes = {**kept, **step.changes}
        planned.append((step, dataclasses.replace(b, seeds=b.seeds[: step.seeds], overrides=tuple(changes.items()))))
        kept = changes if step.kept else kept
    i = found(planned)
    planned[i] = (planned[i][0], as_named(dataclasses.replace(planned[i][1], seeds=b.seeds)))
    return planned


def left_out(planned: list[tuple[Step, Budget]]) -> list[tuple[int, Budget]]:
    """For each kept step marked ``leave_one_out``: (its index, the recipe found's budget with the
    step's changes set back to what the kept step before it trains with), with all the budget's seeds."""
    r = found(planned)
    recipe = planned[r][1]
    out = []
    for i, (step, _) in enumerate(planned):
        base = kept_before(planned, i)
        if step.leave_one_out and step.kept and i != r and base is not None:
            before = planned[base][1].resolved_recipe()
            back = {**dict(recipe.overrides), **{k: getattr(before, k) for k in step.changes}}
            out.append((i, dataclasses.replace(recipe, overrides=tuple(back.items()))))
    return out


def without_tag(i: int, step: Step) -> str:
    """The store name of the recipe found's runs without step ``i``."""
    return f"without{i}-{step.tag}"


def kept_before(planned: list[tuple[Step, Budget]], i: int) -> int | None:
    """The index of the last kept step before step ``i`` (what step ``i`` adds its technique to), or
    None for the first step."""
    return max((j for j in range(i) if planned[j][0].kept), default=None)


def found(planned: list[tuple[Step, Budget]]) -> int:
    """The index of the recipe found: the last step kept."""
    return max(i for i, (step, _) in enumerate(planned) if step.kept)


def as_named(last: Budget) -> Budget:
    """The last kept step's budget as the recipe ``RECIPE``, resized where the budget is another (the
    small budget's length, split and batch), and checked to train exactly what the kept steps add up to."""
    named = load_recipe(RECIPE)
    wanted = last.resolved_recipe()
    overrides = tuple((k, getattr(wanted, k)) for k in SIZE if getattr(named, k) != getattr(wanted, k))
    recipe = dataclasses.replace(last, recipe=RECIPE, overrides=overrides)
    if differ := recipe_differences(recipe.resolved_recipe().to_dict(), wanted.to_dict()):
        raise DeepresError(f"recipe {RECIPE}: differs from the ablation's last kept step in {', '.join(differ)}")
    return recipe


def on_all_data(budget_name: str, recipe: Budget, variant: OnAllData = QUARTER) -> Budget:
    """The recipe found's budget on all the training images, for the variant's epochs."""
    epochs = variant.epochs[budget_name]
    changes = {**dict(recipe.overrides), "val_split": 0, "epochs": epochs, "warmup": warmup(epochs)}
    return dataclasses.replace(recipe, overrides=tuple(changes.items()))


def on_all_data_variants(budget_name: str, recipe: Budget) -> list[tuple[OnAllData, Budget]]:
    """Each variant of the recipe found on all the training images, with its budget."""
    return [(v, on_all_data(budget_name, recipe, v)) for v in (QUARTER, EIGHTH)]


def tag(i: int, step: Step, b: Budget) -> str:
    """The store name of a step's runs: the named recipe's runs are its plain runs (``resnet20-s0``)."""
    return "" if b.recipe == RECIPE else f"ablation{i}-{step.tag}"


def minutes_to(run: Path, target: float) -> tuple[float, float] | None:
    """(images in millions, training minutes) until the run's validation error first reached
    ``target``; None if it never did."""
    reached = images_to_error(run, target)
    if reached is None:
        return None
    images, epoch = reached
    return images / 1e6, sum(m["seconds"] for m in metrics(run)[:epoch]) / 60


def paper_schedule_run(q: Request) -> Path | None:
    """The paper-schedule ResNet-20 (seed 0) on the same data, finished or still training: in the
    store, else logged by the paper-schedule report."""
    b = paper_schedule.budget(q.budget, q.data)
    for run in (run_dir(q.store, b, NET, 0), q.folder.parent / paper_schedule.EXPERIMENT.name / "runs" / f"{NET}-s0"):
        if (run / RunDir.METRICS).is_file() and metrics(run):
            return run
    return None


def figure(path: Path, done: list[tuple[int, Step, list[Path]]], recipe: int, reference: Path | None) -> None:
    """Validation error against training images: every step's first seed (the recipe found's, step
    ``recipe``, in bold), and the paper's schedule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    curves = [(f"{i}. {s.tag}" + ("" if s.kept else " (not kept)"), rs[0], i == recipe) for i, s, rs in done]
    if reference is not None:
        state = "" if RunDir(reference).finished else ", in progress"
        curves.append((f"the paper's schedule (64k iterations{state})", reference, False))
    for label, run, bold in curves:
        batch = RunDir(run).recipe()["batch_size"]
        rows = [m for m in metrics(run) if "val_error" in m]
        style = {"linewidth": 2.0 if bold else 1.0, "color": "black" if "paper's schedule" in label else None}
        ax.plot([m["step"] * batch / 1e6 for m in rows], [m["val_error"] for m in rows], label=label, **style)
    ax.axhline(TARGET, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("training images seen (millions)")
    ax.set_ylabel("validation error (%)")
    ax.set_ylim(0, 30)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"ResNet-20: validation error against images (dotted: the paper's {TARGET} %)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def seed_of(run: Path) -> int:
    return RunDir(run).recipe()["seed"]


def against_kept_before(planned: list[tuple[Step, Budget]], done: list[tuple[int, Step, list[Path]]]) -> dict:
    """For each finished step whose kept step before it has run with some of the same seeds: {step:
    (that step, its mean validation error, this step's)}, both means over those shared seeds only. A
    paired comparison: a seed's luck (a few tenths, as much as a technique buys) must not count for
    or against the technique when one step has run more seeds than the other. The one comparison the
    table shows and the kept rule reads."""
    runs_of = {i: runs for i, _, runs in done}
    compared = {}
    for i, runs in runs_of.items():
        base = kept_before(planned, i)
        if base in runs_of and (paired := paired_means(runs_of[base], runs)):
            compared[i] = (base, paired[0], paired[1])
    return compared


def table(planned: list[tuple[Step, Budget]], done: list[tuple[int, Step, list[Path]]]) -> str:
    rows, compared = [], against_kept_before(planned, done)
    for i, step, runs in done:
        val = [final_val_error(r) for r in runs]
        rows.append([f"{i}. {step.tag}", step.adds, "yes" if step.kept else "no",
                     ", ".join(f"{v:.2f}" for v in val), mean_std(val),
                     f"{compared[i][2] - compared[i][1]:+.2f}" if i in compared else "-",
                     f"{statistics.mean(test_error(r) for r in runs):.2f}",
                     f"{statistics.mean(images_seen(r) for r in runs):.3g}",
                     "; ".join(dict.fromkeys(precisions(r) for r in runs))])  # fmt: skip
    header = ["step", "adds", "kept", "val error % per seed", "mean +- std", "vs the kept step before (same seeds)",
              "test error % (mean)", "training images (M)", "precision"]  # fmt: skip
    return markdown_table(header, rows)


def left_out_table(planned: list[tuple[Step, Budget]], found_runs: list[Path], without: dict) -> str:
    """The recipe found without each step marked ``leave_one_out`` that has run: its validation error
    beside the recipe found's over the seeds both have run, and its test error (never a choice)."""
    rows, compared = [], against_left_out(found_runs, without)
    for i, runs in sorted(without.items()):
        val = [final_val_error(r) for r in runs]
        rows.append([f"{i}. {planned[i][0].tag}", ", ".join(f"{v:.2f}" for v in val), mean_std(val),
                     f"{compared[i][1] - compared[i][0]:+.2f}" if i in compared else "-",
                     f"{statistics.mean(test_error(r) for r in runs):.2f}",
                     f"{statistics.mean(images_seen(r) for r in runs):.3g}"])  # fmt: skip
    header = ["the recipe found without", "val error % per seed", "mean +- std",
              "vs the recipe found (same seeds)", "test error % (mean)", "training images (M)"]  # fmt: skip
    return markdown_table(header, rows) if rows else "The recipe found without it has not run yet."


def target_table(done: list[tuple[int, Step, list[Path]]], recipe: int, reference: Path | None) -> str:
    """Images and minutes to the paper's error on the validation images: every finished step's runs
    (the recipe found, step ``recipe``, first) and the paper's schedule."""
    order = sorted(done, key=lambda d: d[0] != recipe)  # stable: the others stay in step order
    found_note = {recipe: " (the recipe found)"}
    runs = [(f"{i}. {step.tag}{found_note.get(i, '')}, seed {seed_of(r)}", r)
            for i, step, rs in order for r in rs]  # fmt: skip
    if reference is not None:
        runs.append(("the paper's schedule, seed 0", reference))
    rows = []
    for label, run in runs:
        reached = minutes_to(run, TARGET)
        rows.append([label, *((f"not reached (best {min(val_errors(run)):.2f} %)", "-") if reached is None else
                              (f"{reached[0]:.3g}", f"{reached[1]:.0f}"))])  # fmt: skip
    return markdown_table(["run", f"images to {TARGET} % val error (M)", "training minutes to it"], rows)


def whole_recipe_table(runs_of: list[tuple[str, list[Path]]]) -> str:
    """The recipe found, on the 45k and on all 50k (``runs_of``: each label's finished runs): test error
    against the paper's, with the training images."""
    rows = []
    for label, runs in runs_of:
        if not runs:
            continue
        errors = [test_error(r) for r in runs]
        mean = statistics.mean(errors)
        rows.append([label, ", ".join(str(seed_of(r)) for r in runs),
                     ", ".join(f"{e:.2f}" for e in errors), mean_std(errors), f"{mean - TARGET:+.2f}",
                     "yes" if mean <= TARGET and len(runs) >= 2 else ("no" if len(runs) >= 2 else "needs 2 seeds"),
                     f"{statistics.mean(images_seen(r) for r in runs):.3g}"])  # fmt: skip
    header = ["recipe", "seeds", "test error % per seed", "mean +- std", f"vs the paper's {TARGET}",
              f"<= {TARGET} % (mean of >= 2 seeds)", "training images (M)"]  # fmt: skip
    return markdown_table(header, rows)


def machines(run: Path) -> str:
    """Where a run trained: each segment's CPU, threads and precision, once each, in order."""
    used = [f"{s['cpu']}, {s['threads']} thread(s), {s['precision']}" for s in RunDir(run).env().get("segments", [])]
    return " then ".join(dict.fromkeys(used)) or "?"


def same_training(planned: list[tuple[Step, Budget]], done: list[tuple[int, Step, list[Path]]]) -> list[str]:
    """For each step that changes only the weights reported (an EMA), whether its run trained exactly
    as the kept step before it with the same seed, as it must: equal training loss and error at
    every epoch. A check on both runs (determinism, resume); another CPU's kernels may round
    otherwise, and the machines are named where the curves part."""
    runs_of = {i: {seed_of(r): r for r in runs} for i, _, runs in done}
    checks = []
    for i, (step, _) in enumerate(planned):
        base = kept_before(planned, i)
        if set(step.changes) != {"ema_decay"} or i not in runs_of or base not in runs_of:
            continue
        seeds = sorted(set(runs_of[i]) & set(runs_of[base]))
        if not seeds:
            continue
        a, b = runs_of[base][seeds[0]], runs_of[i][seeds[0]]
        curve = [[(m["train_loss"], m["train_error"]) for m in metrics(r)] for r in (a, b)]
        n = min(map(len, curve))
        parted = next((k for k in range(n) if curve[0][k] != curve[1][k]), None)
        pair = f"Step {i} ({step.tag}) changes only the weights reported; its run (seed {seeds[0]}) "
        if parted is None:
            same = f"equal training loss and error at each of its {n} epoch(s)"
            checks.append(pair + f"trained exactly as step {base}'s: {same}.")
        else:
            (la, ea), (lb, eb) = curve[0][parted], curve[1][parted]
            checks.append(pair + f"parts from step {base}'s at epoch {parted + 1} (training loss {la:.4f} vs "
                          f"{lb:.4f}, error {ea:.2f} vs {eb:.2f} %); they trained on {machines(a)}, and on "
                          f"{machines(b)}.")  # fmt: skip
    return checks


def paired_means(a: list[Path], b: list[Path]) -> tuple[float, float, list[int]] | None:
    """The mean final validation errors of runs ``a`` and ``b`` over the seeds both have run, and
    those seeds; None if they share none."""
    va, vb = ({seed_of(r): final_val_error(r) for r in runs} for runs in (a, b))
    if not (shared := sorted(set(va) & set(vb))):
        return None
    return statistics.mean(va[s] for s in shared), statistics.mean(vb[s] for s in shared), shared


def against_left_out(found_runs: list[Path], without: dict[int, list[Path]]) -> dict:
    """For each step whose leave-one-out has run with some of the recipe found's seeds: {step: (the
    recipe found's mean validation error, the mean without the step, the seeds both ran)}."""
    return {i: paired for i, runs in without.items() if (paired := paired_means(found_runs, runs))}


def kept_against_measured(
    planned: list[tuple[Step, Budget]], done: list[tuple[int, Step, list[Path]]], without: dict | None = None
) -> list[str]:
    """The rule the kept column follows: a step is kept when its mean validation error is below the
    kept step before it (over the seeds both have run), or, for a step also tried as the recipe found
    without it (``without``: step -> those runs), when the recipe found validates below it without
    the step (over the seeds both have run). A line for each step whose flag (set in ``steps()`` by
    hand, as each run finishes) the deciding comparison contradicts, and for each whose leave-one-out
    overrules its stepwise comparison; none for a step whose comparison has not run."""
    lines, steps_done = [], {i: step for i, step, _ in done}
    found_runs = next((runs for i, _, runs in done if i == found(planned)), [])
    overruled, compared = against_left_out(found_runs, without or {}), against_kept_before(planned, done)
    for i in sorted(set(overruled) | set(compared)):
        step = steps_done.get(i, planned[i][0])
        flag, stepwise = "kept" if step.kept else "not kept", None
        if i in compared:
            base, before, mean = compared[i]
            if (mean < before) != step.kept:
                below = "not below" if step.kept else "below"
                stepwise = f"its validation error is {below} step {base}'s ({mean:.2f} % against {before:.2f} %)"
        if i in overruled:
            with_it, without_it, seeds = overruled[i]
            left = (f"the recipe found validates at {with_it:.2f} % with it and {without_it:.2f} % without it "
                    f"(seed(s) {', '.join(map(str, seeds))})")  # fmt: skip
            if (with_it < without_it) != step.kept:
                lines.append(f"Step {i} ({step.tag}) is {flag}, but {left}.")
            elif stepwise:
                lines.append(f"Step {i} ({step.tag}): {stepwise}, but {left}: {flag} on that.")
        elif stepwise:
            lines.append(f"Step {i} ({step.tag}) is {flag}, but {stepwise}.")
    return lines


def queue(budget_name: str, data: str | None) -> list[tuple[Budget, str]]:
    """The runs to train, in order, as (a budget of its seeds, its store tag): the recipe found's seeds
    one at a time (the first: does the budget reach the paper's error at all?) and the recipe found on
    all the training images at a quarter and an eighth of the paper's images (the test error the
    recipe claims, over seeds), the recipe found without each step marked ``leave_one_out``, then
    every other step's seeds from the last down (what bought what, and what did not)."""
    planned = plan(budget_name, data)
    r = found(planned)
    recipe, recipe_tag = planned[r][1], tag(r, *planned[r])
    seeds = [(dataclasses.replace(recipe, seeds=(seed,)), recipe_tag) for seed in recipe.seeds]
    variants = [(b, v.tag) for v, b in on_all_data_variants(budget_name, recipe)]
    without = [(b, without_tag(i, planned[i][0])) for i, b in left_out(planned)]
    others = [(planned[i][1], tag(i, *planned[i])) for i in reversed(range(len(planned))) if i != r]
    return seeds + variants + without + others


def make(q: Request) -> Report:
    folder, done, missing = q.folder, [], []
    if q.train:  # train in the queue's order; the report below gathers (and logs) what has finished
        logs = report_logs(folder)
        for b, t in queue(q.budget, q.data):
            for seed in b.seeds:
                finished_run(q.store, logs, b, NET, seed, tag=t, train=True)

    def step_runs(i: int, step: Step, b: Budget) -> None:
        runs, absent = seed_runs(folder, q.store, b, NET, tag(i, step, b), train=False)
        missing[:0] = [f"{i}. {step.tag} seed {seed}" for seed in absent]  # steps come last first
        if runs:
            done.insert(0, (i, step, runs))

    planned = plan(q.budget, q.data)
    for i, (step, b) in reversed(list(enumerate(planned))):
        step_runs(i, step, b)
    recipe = found(planned)
    recipe_step, recipe_budget = planned[recipe]
    on_all = {}
    for variant, b in on_all_data_variants(q.budget, recipe_budget):
        on_all[variant.tag], absent = seed_runs(folder, q.store, b, NET, variant.tag, train=False)
        missing.extend(f"{variant.tag} seed {seed}" for seed in absent)
    without, leaving = {}, left_out(planned)
    for i, b in leaving:
        runs, absent = seed_runs(folder, q.store, b, NET, without_tag(i, planned[i][0]), train=False)
        missing.extend(f"the recipe found without {i}. {planned[i][0].tag} seed {seed}" for seed in absent)
        if runs:
            without[i] = runs
    b = budget(q.budget, q.data)
    if not done:
        body = f"{b.label}; budget `{q.budget}`.{small_note(q.budget)} {data_note(b.data)}\nNo step has run yet."
        return Report("Ablation: the paper's ResNet-20 for a quarter of its images", body, missing)
    held_out = b.resolved_recipe().val_split
    recipe_runs = next((runs for i, _, runs in done if i == recipe), [])
    label = f"{recipe}. {recipe_step.tag}"
    whole = whole_recipe_table([(f"{label}, {held_out:,} images held out", recipe_runs),
                                *((v.label, on_all[v.tag]) for v in (QUARTER, EIGHTH))])  # fmt: skip
    reference = paper_schedule_run(q)
    figure(folder / "images_to_error.png", done, recipe, reference)
    images = statistics.mean(images_seen(r) for r in done[0][2])
    checks = "".join(
        f"\n{line}\n" for line in kept_against_measured(planned, done, without) + same_training(planned, done)
    )  # a blank line around each
    leave_one_out = ""
    if leaving:
        leave_one_out = f"""
Where a step was kept before the step it is compared with had run, and the steps below were built on
it, the recipe found is also trained without it (the rest unchanged, with the recipe found's seeds),
and that comparison decides the step's flag (leave one out):

{left_out_table(planned, recipe_runs, without)}
"""
    body = f"""{b.label}; budget `{q.budget}`.{small_note(q.budget)} {data_note(b.data)}
ResNet-20 exactly as the paper builds it (option A) for {EPOCHS[q.budget]} epoch(s) ({images:.3g} M training
images; the paper trains 64k x 128 = 8.19 M). Each step adds one technique to the kept steps above it;
a step not kept was tried and is left out of the steps below it. The network and the test protocol
(final weights, single centre crop) never change and nothing is chosen on the test set: the steps are
compared on the {held_out:,} held-out validation images, and a step is kept when its mean validation error
is below that of the kept step before it, both over the seeds both have run.

{table(planned, done)}
{checks}{leave_one_out}
![validation error against training images](images_to_error.png)

{target_table(done, recipe, reference)}

## The recipe found: test error

The last kept step's recipe, named `{RECIPE}` (`deepres train --recipe {RECIPE}`; the runs of Table 6, Fig. 6
and the shortcuts at the full budget train with it), and the same trained on all the training images
(the {held_out:,} held out join them): for {QUARTER.epochs[q.budget]:g} epoch(s), so the images stay within
the budget, and for {EIGHTH.epochs[q.budget]:g}, half of it. Test error of the final weights, single centre
crop; the paper: {TARGET} %.

{whole}

Minutes are training time on the machines the runs used (each run's `env.json` segments).
"""
    return Report("Ablation: the paper's ResNet-20 for a quarter of its images", body, missing)


EXPERIMENT = Experiment("ablation", True, make, "ResNet-20 at a quarter of the paper's images, one technique at a time")
