"""The README and the committed reports link only to files the repository holds: a link into a
folder that .gitignore hides (a report's run logs, say) would be dead on every fresh clone."""

import re
import subprocess
from pathlib import Path

import pytest

from conftest import missing

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted(ROOT.glob("*.md")) + sorted((ROOT / "results").glob("*/*.md"))
LINK = re.compile(r"\]\(([^)#\s]+)\)")


def tracked() -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        missing("not a git checkout")
    return set(out.stdout.splitlines())


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_local_links_point_at_tracked_files(doc):
    files = tracked()
    for target in LINK.findall(doc.read_text()):
        if "://" in target:
            continue
        path = (doc.parent / target).resolve().relative_to(ROOT).as_posix()
        # a file is tracked itself; a folder holds at least one tracked file
        assert path in files or any(f.startswith(path.rstrip("/") + "/") for f in files), f"{doc.name}: {target}"
