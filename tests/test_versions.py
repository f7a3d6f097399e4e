"""Every pinned tool version lives in tools/versions.env alone: a version spelled anywhere
else in the tree (a script, the Makefile, a test, the docs, a workflow) fails here, so
bumping one is one edit. The negative control puts one back where it used to be."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from offload_testkit.versions import VERSIONS_FILE, pins

ROOT = Path(__file__).resolve().parents[1]
# Where a version may appear for another reason: the pins themselves, Python's lock files
# (PyPI versions, not ours), and the changelog (history).
ELSEWHERE = ("tools/versions.env", "requirements/", "CHANGELOG.md")


def spelled(files: dict[str, str]) -> list[str]:
    """`path: NAME` for every pinned version found in `files` (path -> text)."""
    found = []
    for name, version in pins().items():
        bare = version.removeprefix("v")
        pattern = re.compile(
            rf"(?<![\w.]){re.escape(version)}(?![\w.])|(?<![\w.])v?{re.escape(bare)}(?![\w.]|-0)"
        )
        found += [f"{path}: {name}" for path, text in files.items() if pattern.search(text)]
    return found


def tracked() -> dict[str, str]:
    paths = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    files = {}
    for path in paths.split():
        if path.startswith(ELSEWHERE) or not (ROOT / path).is_file():
            continue
        try:
            files[path] = (ROOT / path).read_text()
        except UnicodeDecodeError:
            continue
    return files


def test_no_pinned_version_is_spelled_outside_the_pin_file():
    assert VERSIONS_FILE.is_file()
    assert spelled(tracked()) == []


def test_control_a_version_spelled_in_a_script_is_caught():
    kubernetes = pins()["KUBERNETES_VERSION"]
    files = {"scripts/kube-binaries.sh": f"KUBERNETES_VERSION={kubernetes}\n"}
    assert spelled(files) == ["scripts/kube-binaries.sh: KUBERNETES_VERSION"]
