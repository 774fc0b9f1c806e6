"""Recipes are data: named files, the paper's numbers, overrides from the command line, schedules."""

import tomllib

import pytest

from conftest import cli
from deepres.errors import ConfigError
from deepres.train.recipe import Recipe, list_recipes, load_recipe
from deepres.train.schedule import LRSchedule


def test_named_recipes():
    names = [n for n, _ in list_recipes()]
    assert {"cifar-paper", "cifar-quarter", "cifar-fast", "imagenet-paper", "sample"} <= set(names)


def test_cifar_paper_is_the_paper():
    r = load_recipe("cifar-paper")
    assert (r.batch_size, r.optimizer, r.momentum, r.weight_decay, r.lr) == (128, "sgd", 0.9, 1e-4, 0.1)
    assert (r.iterations, r.milestones, r.gamma, r.schedule) == (64000, [32000, 48000], 0.1, "step")
    assert (r.val_split, r.augment, r.pad, r.normalize) == (5000, "cifar", 4, "pixel-mean")
    r110 = r.replace(model="resnet110").resolved()
    assert (r110.warmup_lr, r110.warmup_until_error) == (0.01, 0.8)
    assert r.resolved().warmup_until_error == 0  # only ResNet-110/1202 warm up


def test_cifar_quarter_keeps_the_papers_protocol_at_a_quarter_of_its_images():
    quarter, paper = load_recipe("cifar-quarter"), load_recipe("cifar-paper")
    protocol = ("model", "val_split", "augment", "pad", "normalize", "batch_size", "test_mode", "test_flip")
    assert all(getattr(quarter, k) == getattr(paper, k) for k in protocol)
    assert quarter.epochs * (50_000 - quarter.val_split) <= paper.iterations * paper.batch_size / 4
    assert quarter.model_options == paper.model_options == {}  # the paper's modules, initialised as the paper's


def test_cifar_quarter_trains_every_net_deeper_than_20_layers_alike():
    """`deepres reproduce depth` adopted one change for the nets deeper than 20 layers: every such net
    of Table 6 and Fig. 6, residual or plain, trains with it (ResNet-110 also warms up, as the paper's);
    the 20-layer nets keep the recipe the ablation found."""
    from deepres.reproduce.cifar import NETS
    from deepres.reproduce.depth import NET

    quarter, skip = load_recipe("cifar-quarter"), {"model", "model_overrides", "warmup_lr", "warmup_until_error"}

    def trains(recipe: Recipe) -> dict:
        return {k: v for k, v in recipe.to_dict().items() if k not in skip}

    def net(model: str) -> dict:
        return trains(quarter.replace(model=model).resolved())

    residual, plain = NETS["full"]
    deeper = [n for n in residual + plain if int(n.removeprefix("resnet").removeprefix("plain")) > 20]
    assert net("resnet20") == net("plain20") == trains(quarter)
    assert NET in deeper and all(net(n) == net(NET) != trains(quarter) for n in deeper)


def test_imagenet_paper_recipe():
    r = load_recipe("imagenet-paper")
    assert (r.batch_size, r.lr, r.weight_decay, r.crop, r.scale_min, r.scale_max) == (
        256,
        0.1,
        1e-4,
        224,
        256,
        480,
    )
    assert r.test_mode == "ten-crop" and r.iterations == 600000 and r.schedule == "plateau"


def test_show_prints_toml_that_loads_back(tmp_path):
    result = cli("recipe", "show", "cifar-paper", "--lr", "0.05", "--milestones", "100,200", "--epochs", "3")
    assert result.returncode == 0, result.stderr
    values = tomllib.loads(result.stdout)
    assert values["lr"] == 0.05 and values["milestones"] == [100, 200]
    assert values["epochs"] == 3.0 and values["iterations"] == 0  # one duration replaces the other
    (tmp_path / "mine.toml").write_text(result.stdout)
    assert load_recipe(str(tmp_path / "mine.toml")) == Recipe.from_dict(values)


def test_set_takes_any_field_as_toml():
    result = cli(
        "recipe",
        "show",
        "sample",
        "--set",
        "model_overrides={resnet56={lr=0.05}}",
        "--set",
        "model_options={shortcut='B'}",
        "--model",
        "resnet56",
        "--resolved",
    )
    values = tomllib.loads(result.stdout)
    assert values["lr"] == 0.05 and values["model_options"] == {"shortcut": "B"}


def test_a_flag_wins_over_the_recipes_override_for_the_model():
    """cifar-paper warms ResNet-110 up at lr 0.01: `--warmup-lr 0.02` is what that run trains with,
    never silently undone by the override; fields the flags leave alone keep it."""
    result = cli("recipe", "show", "cifar-paper", "--model", "resnet110", "--warmup-lr", "0.02", "--resolved")
    assert result.returncode == 0, result.stderr
    values = tomllib.loads(result.stdout)
    assert (values["warmup_lr"], values["warmup_until_error"]) == (0.02, 0.8)
    assert load_recipe("cifar-paper").replace(model="resnet110", warmup_lr=0.02).resolved().warmup_lr == 0.01
    # a run has one length: --epochs wins over an override of the iterations too
    longer = load_recipe("cifar-paper").replace(model_overrides={"resnet56": {"iterations": 96000}})
    assert longer.replace(model="resnet56").resolved().iterations == 96000
    short = longer.overridden(model="resnet56", epochs=3).resolved()
    assert (short.epochs, short.iterations) == (3, 0)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch-size", "many"], "--batch-size 'many': expected a int"),
        (["--channels-last", "maybe"], "--channels-last 'maybe': expected a bool"),
        (["--set", "colour=1"], "unknown recipe field 'colour'"),
        (["--optimizer", "lion"], "optimizer='lion': expected one of sgd, adamw"),
        (["--lr", "-1"], "lr=-1.0: expected a number > 0"),
        (["--momentum", "1"], "momentum=1.0: expected a number in [0, 1)"),
        (["--gamma", "0"], "gamma=0.0: expected a number > 0"),
    ],
)
def test_bad_overrides_are_one_line_errors(args, message):
    result = cli("recipe", "show", "sample", "--resolved", *args)
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_recipe_file_errors(tmp_path):
    (tmp_path / "bad.toml").write_text("lr = 0.1\ncolour = 'red'\n")
    with pytest.raises(ConfigError, match="bad.toml: unknown recipe field\\(s\\) colour"):
        load_recipe(str(tmp_path / "bad.toml"))
    (tmp_path / "typo.toml").write_text("lr = 'fast'\n")
    with pytest.raises(ConfigError, match="lr='fast' is not a float"):
        load_recipe(str(tmp_path / "typo.toml"))
    (tmp_path / "broken.toml").write_text("lr = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_recipe(str(tmp_path / "broken.toml"))
    with pytest.raises(ConfigError, match="unknown recipe 'nope'"):
        load_recipe("nope")


def test_step_schedule_in_iterations():
    s = LRSchedule(load_recipe("cifar-paper").resolved(), steps_per_epoch=351)
    assert s.total == 64000
    assert [s.lr(i) for i in (0, 31999, 32000, 47999, 48000, 63999)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )


def test_step_schedule_in_epochs_with_linear_warmup():
    r = Recipe(epochs=10, milestones=[5], warmup=1, lr=0.1)
    s = LRSchedule(r, steps_per_epoch=100)
    assert s.lr(0) == pytest.approx(0.001) and s.lr(99) == pytest.approx(0.1)
    assert s.lr(499) == pytest.approx(0.1) and s.lr(500) == pytest.approx(0.01)


def test_warmup_until_training_error_drops():
    s = LRSchedule(load_recipe("cifar-paper").replace(model="resnet110").resolved(), 351)
    assert s.lr(0) == 0.01 and s.lr(1000) == 0.01
    assert not s.observe_train_error(0.85)
    assert s.observe_train_error(0.79)
    assert s.lr(1000) == 0.1 and not s.warming
    restored = LRSchedule(load_recipe("cifar-paper").replace(model="resnet110").resolved(), 351)
    restored.load_state_dict(s.state_dict())
    assert restored.lr(1000) == 0.1


def test_onecycle_cosine_and_plateau():
    one = LRSchedule(Recipe(epochs=10, schedule="onecycle", warmup=2, lr=0.2), 100)
    assert one.lr(0) == pytest.approx(0.008) and one.lr(200) == pytest.approx(0.2) and one.lr(1000) == 0
    cos = LRSchedule(Recipe(epochs=10, schedule="cosine", lr=0.1), 100)
    assert cos.lr(500) == pytest.approx(0.05) and cos.lr(1000) == pytest.approx(0)
    plat = LRSchedule(Recipe(epochs=10, schedule="plateau", plateau_patience=2, lr=0.1), 100)
    for err in (50, 40, 41, 42):
        plat.observe_val_error(err)
    assert plat.lr(0) == pytest.approx(0.01)


def test_every_field_describes_itself_once():
    """Help, choices or bounds and role live in the field's declaration; the command line's flags,
    validation, the pipeline and the machine fields derive from it."""
    from deepres.data.pipeline import Pipeline
    from deepres.train.recipe import MACHINE_FIELDS, Recipe

    fields = Recipe.fields()
    assert all(f.metadata["help"] for f in fields.values())
    assert set(MACHINE_FIELDS) == {"precision", "threads", "checkpoint_every", "eval_batch_size", "workers"}
    help_text = cli("train", "--help").stdout
    flags = [n for n in fields if n not in ("name", "description", "model_overrides")]
    for name in flags:  # every flag has its help line, with its choices or range where it has one
        assert f"--{name.replace('_', '-')} VALUE" in help_text, name
    assert "one of auto, bf16, fp32" in help_text and "a number in [0, 1)" in help_text
    recipe = load_recipe("imagenet-quarter")
    p = Pipeline.from_settings(recipe)
    assert (p.crop, p.scale_min, p.augment, p.lighting) == (
        recipe.crop,
        recipe.scale_min,
        recipe.augment,
        recipe.lighting,
    )


def test_one_length_per_run():
    r = load_recipe("cifar-paper")
    assert (r.replace(epochs=3).epochs, r.replace(epochs=3).iterations) == (3.0, 0)
    assert r.replace(epochs=3).replace(iterations=10).epochs == 0.0
