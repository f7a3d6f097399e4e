"""The docs name only what exists: every `make` target, repository path and OFFLOAD_*
variable in the markdown is checked against the tree, so a rename that forgets the docs
fails here instead of misleading a reader."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARKDOWN = sorted(
    ROOT / name
    for name in subprocess.run(
        ["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
)
CODE_SPAN = re.compile(r"```[^\n]*\n(.*?)```|`([^`\n]+)`", re.DOTALL)
MAKE_TARGET = re.compile(r"(?<![\w-])make ([a-z][a-z0-9-]*)")
VARIABLE = re.compile(r"\bOFFLOAD_[A-Z0-9_]*[A-Z0-9]\b")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
# A code span that is a path in this repository: starts at a top-level directory or file.
TOP_LEVEL = tuple(p.name for p in ROOT.iterdir() if not p.name.startswith(".")) + (".ci", ".env.dev")


def _code(text: str) -> str:
    """The code spans and fenced blocks of a markdown text, one per line."""
    return "\n".join(block or span for block, span in CODE_SPAN.findall(text))


def _names(pattern: re.Pattern[str], text: str) -> set[str]:
    return set(pattern.findall(text))


def _make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    return {m for line in makefile.splitlines() for m in re.findall(r"^([a-z][a-z0-9-]*):", line)}


def _source_text() -> str:
    """Every tracked file that is not markdown: where a variable must be read or set."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    texts = []
    for name in files.stdout.split():
        path = ROOT / name
        if path.suffix == ".md" or not path.is_file() or path == Path(__file__).resolve():
            continue  # this file names missing things on purpose
        try:
            texts.append(path.read_text())
        except UnicodeDecodeError:
            continue
    return "\n".join(texts)


def _repo_paths(text: str) -> set[str]:
    """Tokens of the code that name a top-level entry or a path under one."""
    paths = set()
    for token in _code(text).split():
        token = token.strip("\"'").rstrip(".,:;)")
        if any(c in token for c in "*<>{}$=|"):
            continue
        if token.split("/", 1)[0] in TOP_LEVEL and (token in TOP_LEVEL or "/" in token):
            paths.add(token.split(":", 1)[0])
    return paths


def _exists(doc: Path, path: str) -> bool:
    return (ROOT / path).exists() or (doc.parent / path).exists()


@pytest.mark.parametrize("doc", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_make_target_a_doc_names_exists(doc):
    missing = _names(MAKE_TARGET, _code(doc.read_text())) - _make_targets()
    assert not missing, f"{doc.relative_to(ROOT)} names make targets the Makefile lacks: {sorted(missing)}"


@pytest.mark.parametrize("doc", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_a_doc_names_exists(doc):
    text = doc.read_text()
    missing = {p for p in _repo_paths(text) if not _exists(doc, p)}
    missing |= {
        link
        for link in LINK.findall(text)
        if "://" not in link and not link.startswith("mailto:") and not (doc.parent / link).exists()
    }
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist: {sorted(missing)}"


def test_every_variable_the_docs_name_is_read_or_set_somewhere():
    named = set().union(*(_names(VARIABLE, doc.read_text()) for doc in MARKDOWN))
    source = _source_text()
    # A secret's NAME_FILE is read by the settings table wherever NAME is (offload_core.settings).
    missing = {
        name
        for name in named
        if not any(re.search(rf"\b{n}\b", source) for n in (name, name.removesuffix("_FILE")))
    }
    assert not missing, f"the docs name variables nothing reads or sets: {sorted(missing)}"


def test_the_checks_catch_what_they_look_for(tmp_path):
    """Negative control: a doc naming a missing target, path and variable is caught."""
    text = "Run `make no-such-target`, read `docs/no-such.md`, set `OFFLOAD_NO_SUCH_SETTING`."
    assert _names(MAKE_TARGET, _code(text)) - _make_targets() == {"no-such-target"}
    assert {p for p in _repo_paths(text) if not (ROOT / p).exists()} == {"docs/no-such.md"}
    assert not re.search(r"\bOFFLOAD_NO_SUCH_SETTING\b", _source_text())


def test_the_settings_reference_is_generated_from_the_setting_tables():
    from offload_core import settings_reference

    current = (ROOT / "docs" / "settings.md").read_text()
    assert current == settings_reference.render(), (
        "docs/settings.md is stale: python -m offload_core.settings_reference > docs/settings.md"
    )


def test_every_variable_a_service_reads_is_in_the_settings_reference():
    """Every variable read through a setting table, and every one read from os.environ
    directly, is in the reference. Negative control: a reference without one line misses it."""
    reference = (ROOT / "docs" / "settings.md").read_text()
    read = set()
    for path in list(ROOT.glob("libs/offload-core/src/**/*.py")) + list(ROOT.glob("services/*/src/**/*.py")):
        text = path.read_text()
        read |= set(re.findall(r'setting\(\s*"(OFFLOAD_[A-Z0-9_]+)"', text))
        read |= set(re.findall(r'environ(?:\.get\(|\[)\s*"(OFFLOAD_[A-Z0-9_]+)"', text))

    def missing(text: str) -> set[str]:
        return {name for name in read if not re.search(rf"\b{name}\b", text)}

    assert {"OFFLOAD_LOG_LEVEL", "OFFLOAD_AMQP_URL"} <= read
    assert not missing(reference)
    without = "\n".join(line for line in reference.splitlines() if "`OFFLOAD_LOG_LEVEL`" not in line)
    assert missing(without) == {"OFFLOAD_LOG_LEVEL"}
