"""tools/carry_runs.py: a real training, stopped by the tool with SIGINT, its checkpoint and logs
committed in a commit of their own in a real git repository, ready to resume; a finished run that no
report logs yet carried with it, one that a report logs left out."""

import signal
import subprocess
import sys

from conftest import ROOT, train_cmd, wait_for
from deepres.train.checkpoint import load_checkpoint

CARRIED = {"last.pt", "recipe.toml", "env.json", "metrics.jsonl", "log.txt"}


def test_carry_stops_the_trainings_and_commits_only_their_checkpoints(tiny_cifar, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    git("config", "user.email", "ci@example.com")
    git("config", "user.name", "CI")
    (repo / ".gitignore").write_text("/runs/\n")
    git("add", ".gitignore")
    git("commit", "-q", "-m", "start")
    (repo / "notes.txt").write_text("work in progress\n")
    git("add", "notes.txt")  # staged, and no part of the carry

    run = repo / "runs" / "group" / "resnet20-s0"
    proc = subprocess.Popen(train_cmd(tiny_cifar, run, "--epochs", "200", "--precision", "fp32"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_for(lambda: (run / "metrics.jsonl").is_file() and (run / "metrics.jsonl").read_text().count("\n") >= 1)
    for net in ("resnet56", "resnet32"):  # two finished runs: a report logs the first, none the second
        finished = repo / "runs" / "group" / f"{net}-s0"
        finished.mkdir()
        for name in ("recipe.toml", "last.pt", "test.json"):
            (finished / name).write_text(f'{{"net": "{net}"}}' if name == "test.json" else "")
    logged = repo / "results" / "cifar" / "runs" / "resnet56-s0"
    logged.mkdir(parents=True)
    (logged / "test.json").write_text('{"net": "resnet56"}')
    (repo / "results" / "other" / "runs" / "resnet32-s0").mkdir(parents=True)  # another run of that name
    (repo / "results" / "other" / "runs" / "resnet32-s0" / "test.json").write_text('{"net": "resnet32", "seed": 5}')

    done = subprocess.run([sys.executable, ROOT / "tools" / "carry_runs.py"], cwd=repo, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT and "checkpoint written" in err  # stopped by the tool
    step = load_checkpoint(run / "last.pt")["step"]
    subject, *files = git("show", "--name-only", "--format=%s", "HEAD").strip().split("\n")
    carried = f"group/resnet20-s0 at step {step:,}; group/resnet32-s0 finished, in no report yet"
    assert (
        subject
        == f"Carry the runs to the next session: {carried} (resume each unfinished one with deepres train --resume)"
    )
    assert {f for f in files if f} == {f"runs/group/resnet20-s0/{name}" for name in CARRIED} | {
        f"runs/group/resnet32-s0/{name}" for name in ("recipe.toml", "last.pt", "test.json")
    }
    assert git("diff", "--cached", "--name-only").split() == ["notes.txt"]  # still staged, not committed
    assert "resume: deepres train --resume runs/group/resnet20-s0" in done.stdout

    again = subprocess.run([sys.executable, ROOT / "tools" / "carry_runs.py"], cwd=repo, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0 and "already committed as they are" in again.stdout, again.stderr
