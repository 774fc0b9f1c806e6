"""The `deepres` command. Thin: parse flags, call the library, print. Errors a user can cause are
printed as one line (``--debug`` shows the traceback); tracebacks are for bugs."""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import sys
import traceback

from .choices import PRECISIONS
from .errors import DeepresError
from .tables import FORMATS, render


class Parser(argparse.ArgumentParser):
    """One line for a bad flag, like every other error a user can cause (argparse prints the usage too)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def count(raw: str) -> int:
    """A flag that counts something (images per batch, classes, pixels): a whole number >= 1."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


# --- models / summary ------------------------------------------------------------------------------
def cmd_models(args: argparse.Namespace) -> int:
    from .models.registry import describe, list_models
    from .pretrained import list_pretrained

    tags: dict[str, list[str]] = {}
    for shipped in list_pretrained():
        net, _, tag = shipped.partition(":")
        tags.setdefault(net, []).append(tag)
    rows = [
        {**describe(name), "pretrained": ", ".join(tags.get(name, [])) or "-"} for name in list_models(args.pattern)
    ]
    if not rows:
        raise DeepresError(f"no model matches {args.pattern!r}; `deepres models` lists them all")
    print(render(rows, args.format))
    return 0


def _expand_names(patterns: list[str]) -> list[str]:
    from .models.registry import get_entry, list_models

    names: list[str] = []
    for p in patterns:
        found = list_models(p) if any(ch in p for ch in "*?[") else [get_entry(p).name]
        if not found:
            raise DeepresError(f"no model matches {p!r}; see `deepres models`")
        names += [n for n in found if n not in names]
    return names


def cmd_summary(args: argparse.Namespace) -> int:
    from .analysis.complexity import summary_rows
    from .models.registry import models_with_paper_figures
    from .train.recipe import parse_options

    names = _expand_names(args.names) if args.names else models_with_paper_figures()
    rows = summary_rows(names, args.input_size, **parse_options(args.option))
    print(render(rows, args.format))
    return 0


# --- train / recipe -----------------------------------------------------------------------------------
RECIPE_FLAG_EXCLUDE = {"name", "description", "model_overrides"}  # set through --set or a recipe file


def add_recipe_flags(p: argparse.ArgumentParser) -> None:
    from .train.recipe import Recipe, describe_range

    g = p.add_argument_group("recipe fields (override the recipe's value)")
    for name, f in Recipe.fields().items():
        if name not in RECIPE_FLAG_EXCLUDE:
            allowed = describe_range(f.metadata)
            g.add_argument(
                f"--{name.replace('_', '-')}",
                dest=f"recipe_{name}",
                metavar="VALUE",
                help=(f.metadata["help"] + (f" ({allowed})" if allowed else "")).replace("%", "%%"),
            )
    g.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="any field with a TOML value, e.g. --set 'model_overrides={resnet110={warmup_lr=0.01}}'",
    )


def recipe_overrides(args: argparse.Namespace) -> dict:
    import tomllib

    from .train.recipe import parse_field

    changes = {
        k.removeprefix("recipe_"): parse_field(k.removeprefix("recipe_"), v)
        for k, v in vars(args).items()
        if k.startswith("recipe_") and v is not None
    }
    for pair in args.set or []:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise DeepresError(f"--set {pair!r}: expected KEY=VALUE")
        try:
            changes[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            changes[key.strip()] = raw  # a bare string
    return changes


def resolve_recipe(args: argparse.Namespace):
    from .train.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    return recipe.overridden("command line", **recipe_overrides(args))


def cmd_train(args: argparse.Namespace) -> int:
    from .train.recipe import MACHINE_FIELDS
    from .train.trainer import train

    if args.resume:
        changes = recipe_overrides(args)
        fixed = sorted(set(changes) - set(MACHINE_FIELDS))
        if fixed or args.recipe != DEFAULT_RECIPE:
            flags = ", ".join(f"--{k.replace('_', '-')}" for k in fixed) or "--recipe"
            machine = ", ".join(f"--{k.replace('_', '-')}" for k in MACHINE_FIELDS)
            raise DeepresError(
                f"--resume continues a run with its own recipe: drop {flags} (only {machine} may change)"
            )
        train(None, resume=args.resume, quiet=args.quiet, machine=changes)
    else:
        train(resolve_recipe(args), out=args.out, quiet=args.quiet)
    return 0


def cmd_recipe(args: argparse.Namespace) -> int:
    from .train.recipe import list_recipes

    if args.action == "list":
        rows = [{"recipe": n, "description": d} for n, d in list_recipes()]
        print(render(rows, args.format, width=shutil.get_terminal_size().columns))
        return 0
    if not args.name:
        raise DeepresError("recipe show needs a NAME (see `deepres recipe list`)")
    args.recipe = args.name
    recipe = resolve_recipe(args)
    print(recipe.resolved().to_toml() if args.resolved else recipe.to_toml(), end="")
    return 0


# --- eval / predict / plot / download ----------------------------------------------------------------------
def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate
    from .hardware import default_device
    from .train.checkpoint import load_target, model_from_checkpoint
    from .train.parts import checkpoint_splits

    ckpt, path = load_target(args.checkpoint, args.which)
    model, pipeline, _ = model_from_checkpoint(ckpt, path)
    model.to(default_device())
    train_set, val_set, test_set, test_name, _ = checkpoint_splits(ckpt, path, args.data)
    split = {"train": train_set, "val": val_set, "test": test_set}[args.split]
    if split is None:
        raise DeepresError(f"{args.data or ckpt['recipe']['data']}: no {args.split} split")
    modes = [m for m, on in (("ten-crop", args.ten_crop), ("multi-scale", args.multi_scale)) if on] or ["center"]
    rows = []
    for mode in modes:
        res = evaluate(model, split, pipeline, mode, args.flip, args.batch_size, args.precision, compile=args.compile)
        rows.append(
            {
                "checkpoint": path,
                "split": args.split if args.split != "test" else test_name,
                "mode": mode + (" + flip" if args.flip or mode == "multi-scale" else ""),
                "images": res["n"],
                "top1_error_%": round(res["top1_error"], 2),
                "top5_error_%": round(res["top5_error"], 2),
                "loss": round(res["loss"], 4),
            }
        )
    print(render(rows, args.format))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .data.folder import IMAGE_ERRORS, decode
    from .evaluate import predict_probs
    from .train.checkpoint import load_target, model_from_checkpoint

    ckpt, path = load_target(args.checkpoint, args.which)
    model, pipeline, classes = model_from_checkpoint(ckpt, path)
    channels = ckpt["in_chans"]
    rows = []
    for image in args.images:
        try:
            array = decode(Path(image), channels)
        except FileNotFoundError:
            raise DeepresError(f"{image}: no such file") from None
        except IMAGE_ERRORS as e:
            raise DeepresError(f"{image}: not a readable image ({e})") from None
        probs = predict_probs(model, pipeline, array, args.precision)
        top = probs.topk(min(args.top, len(classes)))
        for rank, (p, i) in enumerate(zip(top.values.tolist(), top.indices.tolist(), strict=True), 1):
            # Four significant digits, not four decimals: a small probability reads 3.1e-05, never 0.
            rows.append({"image": image, "rank": rank, "class": classes[i], "probability": float(f"{p:.4g}")})
    print(render(rows, args.format))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .analysis.curves import plot_runs

    out = plot_runs(args.runs, args.out, labels=args.label, title=args.title, x=args.x)
    print(out)
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .data.cifar import download_named
    from .data.registry import data_root

    print(download_named(args.dataset, Path(args.dir) if args.dir else data_root(), args.url, args.md5))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .export import FORMATS, export_checkpoint, export_model
    from .models.registry import list_models

    target = Path(args.target)
    if not target.exists() and args.target in list_models():
        # A bare architecture (He-initialised): for benchmarks, serving tests and shape checks.
        from . import create_model

        classes = {"num_classes": args.num_classes} if args.num_classes else {}
        model = create_model(args.target, in_chans=args.in_chans, **classes)
        size = args.input_size or model.default_input_size
        out = Path(args.out or f"{args.target}{FORMATS[args.format]}")
        meta = {"model": args.target, "input": "normalized NCHW float32"}
        export_model(model, out, args.format, (1, args.in_chans, size, size), meta)
    else:
        from .pretrained import is_pretrained_name
        from .train.checkpoint import load_target

        ckpt, origin = load_target(args.target, args.which)
        if is_pretrained_name(args.target):
            default = Path(origin.replace(":", "-")).with_suffix(FORMATS[args.format])  # resnet56-cifar10.onnx
        else:
            default = Path(origin).with_suffix(FORMATS[args.format])
        out = Path(args.out or default)
        export_checkpoint(ckpt, out, args.format, origin, raw=args.raw)
    print(out)
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import reproduce

    print(reproduce(args.experiment, args.budget, args.out, args.data, args.runs, not args.no_train, args.pretrained))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run benchmarks/bench.py of the source checkout deepres is installed from."""
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench.py"
    if not script.is_file():
        raise DeepresError(f"{script}: not found; `deepres bench` runs from a source checkout (pip install -e .)")
    sys.argv = [str(script), *args.rest]
    runpy.run_path(str(script), run_name="__main__")
    return 0


DEFAULT_RECIPE = "sample"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="deepres",
        description="Deep Residual Learning for Image Recognition (He et al., 2015): networks, "
        "training, evaluation and the paper's experiments.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("models", help="list the registered networks")
    p.add_argument("pattern", nargs="?", help="shell-style wildcard, e.g. 'resnet*'")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("summary", help="weight layers, parameters and multiply-adds vs the paper")
    p.add_argument("names", nargs="*", metavar="NAME", help="models or wildcards (default: the paper's nets)")
    p.add_argument("--input-size", type=count, help="input resolution (default: 224, or 32 for CIFAR nets)")
    p.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="a spec option for every model, e.g. shortcut=C or stride_in_3x3=True",
    )
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("train", help="train a network (default: ResNet-20 on the embedded CIFAR-10 sample)")
    p.add_argument("--recipe", default=DEFAULT_RECIPE, help="recipe name (`deepres recipe list`) or .toml file")
    p.add_argument("--out", help="run directory (default: runs/<time>-<model>-<recipe>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last.pt")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_recipe_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("recipe", help="list recipes, or show one (resolved with overrides) as TOML")
    p.add_argument("action", choices=["list", "show"])
    p.add_argument("name", nargs="?")
    p.add_argument("--resolved", action="store_true", help="apply the recipe's per-model overrides")
    p.add_argument("--format", choices=FORMATS, default="table")
    add_recipe_flags(p)
    p.set_defaults(func=cmd_recipe, imports_torch=False)

    def add_checkpoint(p: argparse.ArgumentParser) -> None:
        p.add_argument("checkpoint", metavar="CHECKPOINT|RUN_DIR|NET:TAG",
                       help="a checkpoint, a run directory, or a pretrained net (e.g. resnet20:cifar10)")  # fmt: skip
        p.add_argument(
            "--which",
            choices=["best", "last"],
            default="best",
            help="in a run directory: best.pt (default, falls back to last.pt) or last.pt",
        )
        p.add_argument("--precision", choices=PRECISIONS, default="auto")
        p.add_argument("--format", choices=FORMATS, default="table")

    p = sub.add_parser("eval", help="top-1/top-5 error of a checkpoint: centre, 10-crop, multi-scale")
    add_checkpoint(p)
    p.add_argument("--data", help="dataset (default: the one it was trained on)")
    p.add_argument("--split", choices=["test", "val", "train"], default="test")
    p.add_argument("--ten-crop", action="store_true", help="average 10 crops (corners, centre, mirrored)")
    p.add_argument(
        "--multi-scale",
        action="store_true",
        help="fully-convolutional testing at the paper's 5 scales (and mirrored), scores averaged",
    )
    p.add_argument("--flip", action="store_true", help="also average the mirrored image's scores")
    p.add_argument("--batch-size", type=count, default=250)
    p.add_argument("--compile", action="store_true", help="torch.compile + freezing: pays on large test sets")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="top-5 classes of images with probabilities")
    add_checkpoint(p)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top", type=count, default=5, help="how many classes to list per image")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="write a checkpoint (or a bare model) as ONNX, TorchScript or safetensors")
    p.add_argument("target", metavar="CHECKPOINT|RUN_DIR|NET:TAG|MODEL")
    p.add_argument("--format", choices=["onnx", "torchscript", "safetensors"], default="onnx")
    p.add_argument("--out", help="file to write (default: beside the checkpoint, or MODEL.<ext>)")
    p.add_argument("--which", choices=["best", "last"], default="best", help="in a run directory: which checkpoint")
    p.add_argument("--raw", action="store_true", help="leave the input normalisation out of the graph")
    p.add_argument("--input-size", type=count, help="bare models: input side (default: native, 224 or 32)")
    p.add_argument("--num-classes", type=count, help="bare models: classes (default: 1000, CIFAR nets 10)")
    p.add_argument("--in-chans", type=count, default=3, help="bare models: input channels")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("reproduce", help="one of the paper's experiments, from real runs: report, figures, logs")
    # Named here, not imported from deepres.reproduce: the command line starts without torch (a test
    # checks that these are the experiments there are).
    p.add_argument(
        "experiment", help="complexity, cifar, degradation, shortcuts, responses, paper-schedule, ablation or depth"
    )
    p.add_argument(
        "--budget", choices=["small", "full"], default="small", help="small: minutes (CI); full: the reports"
    )
    p.add_argument("--out", default="results", help="the report goes to OUT/EXPERIMENT/ (default: results)")
    p.add_argument("--data", help="training experiments: the CIFAR-10 data (default: sample / cifar10)")
    p.add_argument("--runs", default="runs", help="the run store the experiments share (default: runs)")
    p.add_argument(
        "--no-train",
        action="store_true",
        help="train nothing: report the runs already finished (in the store or logged under OUT by an earlier "
        "report) and name the rest",
    )
    p.add_argument(
        "--pretrained",
        metavar="TAG",
        help="responses: measure the shipped pretrained nets NET:TAG (e.g. cifar10) instead of training; their "
        "test set comes from --data (default: the budget's data)",
    )
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("bench", help="speed vs a reference measured side by side (benchmarks/bench.py)", add_help=False)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("plot", help="training/validation error curves of runs (the paper's Fig. 6 style)")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", default="curves.png", help="PNG file to write")
    p.add_argument("--label", action="append", help="legend label per run (default: model name)")
    p.add_argument("--title")
    p.add_argument("--x", choices=["iterations", "epochs"], default="iterations")
    p.set_defaults(func=cmd_plot, imports_torch=False)

    p = sub.add_parser("download", help="fetch and verify an official dataset archive (needs internet)")
    p.add_argument("dataset", choices=["cifar10", "cifar100"])
    p.add_argument("--dir", help="where to put it (default: $DEEPRES_DATA or ~/.cache/deepres/datasets)")
    p.add_argument("--url", help="another source of the same archive")
    p.add_argument("--md5", help="the md5 expected for --url")
    p.set_defaults(func=cmd_download, imports_torch=False)
    return parser


INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 prints as its own bytes
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="surrogateescape")
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # A shell without job control starts `cmd &` with SIGINT ignored, and Python then leaves it so.
        # `kill -INT` is how a run is stopped (the trainer catches it while it trains): ignored, it was
        # lost when it landed between the runs of `deepres reproduce` or before training began.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        args.rest = rest  # the benchmark parses its own flags (--quick, --rounds, ...)
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if getattr(args, "imports_torch", True):  # recipe, plot, download never need it: 0.2 s to start, not 1.5
            import_torch_holding_sigint()
        return int(args.func(args) or 0)
    except DeepresError as e:
        return fail(args, str(e), getattr(e, "exit_code", 2))
    except KeyboardInterrupt:
        print(f"deepres {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # e.g. `deepres summary | head`
        return 0
    except OSError as e:  # the system refused a path the user gave (read-only, too long, not a folder...)
        return fail(args, f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e), 2)


def import_torch_holding_sigint() -> None:
    """Import torch with a Ctrl-C held until the import is done, then raised: one that lands while
    torch's C++ start-up runs Python code escapes through C++ and aborts the process ("terminate
    called after throwing an instance of 'pybind11::error_already_set'") instead of stopping it."""
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        import torch  # noqa: F401
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        raise KeyboardInterrupt


def fail(args: argparse.Namespace, message: str, code: int) -> int:
    """Print an error as the one line the README promises (--debug: with its traceback)."""
    if args.debug:
        traceback.print_exc()
    print(f"deepres {args.command}: error: {' '.join(message.splitlines())}", file=sys.stderr)
    return code


def run() -> None:
    """The `deepres` command: `main`, then exit with its code."""
    try:
        code = main()
    except KeyboardInterrupt:  # before a command started (parsing its flags)
        print("deepres: interrupted", file=sys.stderr)
        code = INTERRUPTED
    if code == INTERRUPTED:
        # A Ctrl-C that lands while torch runs Python code from C++ (its import, say) leaves CPython's
        # "unhandled KeyboardInterrupt" flag set although main handled it, and the interpreter would
        # then end by killing itself with SIGINT: exit now with the code the message promised.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # A torchrun worker ends without interpreter teardown. PyTorch's DistributedDataParallel
        # keeps the gloo process group, and so its worker threads, alive past destroy_process_group;
        # a worker still releasing a finished collective's tensors during teardown cannot take the
        # GIL and aborts the process ("terminate called without an active exception") after a run
        # that succeeded. Every file deepres writes is closed by now; only stdio needs flushing.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
