"""The GitHub workflows (the e2e suite on kind, the release), checked by actionlint.

No GitHub runner is reachable from here, so the workflow cannot run; actionlint is the next
best thing: workflow syntax, expressions, the inputs of the actions it uses and, through
shellcheck, the shell of its `run:` steps.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from offload_testkit.k8s_tools import tool

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "e2e.yaml"
RELEASE_WORKFLOW = ROOT / ".github" / "workflows" / "release.yaml"
CHECK_WORKFLOW = ROOT / ".github" / "workflows" / "check.yaml"
WORKFLOWS = (WORKFLOW, RELEASE_WORKFLOW, CHECK_WORKFLOW)


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("actionlint"), "-no-color", str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_the_workflows_pass_actionlint_with_shellcheck(workflow):
    assert shutil.which("shellcheck"), "shellcheck is missing: run `make system-deps`"
    result = actionlint(workflow)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_would_catch_a_broken_step(tmp_path):
    """A guard that the check above can fail: a misspelt context property and a shell
    quoting slip. (Action inputs are not checked: actionlint knows them by tag, and the
    actions are pinned by commit.)"""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = workflow["jobs"]["kind"]["steps"]
    steps[1]["if"] = "${{ github.evnet_name == 'push' }}"
    steps.append({"name": "broken", "run": "cd $HOME/some dir && ls"})
    broken = tmp_path / ".github" / "workflows" / "e2e.yaml"
    broken.parent.mkdir(parents=True)
    broken.write_text(yaml.safe_dump(workflow, sort_keys=False))
    result = actionlint(broken)
    assert result.returncode == 1
    assert "evnet_name" in result.stdout
    assert "shellcheck" in result.stdout


def test_the_workflow_runs_the_suite_as_ci_does_on_the_kind_provider():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    [suite] = [s for s in workflow["jobs"]["kind"]["steps"] if s.get("env", {}).get("OFFLOAD_E2E_PROVIDER")]
    assert suite["env"]["OFFLOAD_E2E_PROVIDER"] == "kind"
    assert suite["run"].endswith(" make e2e")
    assert "OFFLOAD_E2E_PROVIDER=kind make e2e" in (ROOT / ".ci" / "run").read_text().splitlines()


PINNED = re.compile(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}  # v\d+\.\d+\.\d+")


def unpinned(workflow: str) -> list[str]:
    """The `uses:` references of `workflow` that are not a commit with its tag beside it."""
    uses = [line.split("uses:", 1)[1].strip() for line in workflow.splitlines() if "uses:" in line]
    assert uses, "no action referenced: the check would pass on nothing"
    return [use for use in uses if not PINNED.fullmatch(use)]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_with_its_tag_beside_it(workflow):
    """A tag can be moved to other code; a commit cannot (as podinfo's workflows pin them)."""
    assert unpinned(workflow.read_text()) == []


def test_the_pin_check_would_catch_an_action_referenced_by_tag():
    text = WORKFLOW.read_text()
    by_tag = re.sub(r"actions/checkout@[0-9a-f]{40}  # v[\d.]+", "actions/checkout@v4", text, count=1)
    assert by_tag != text
    assert unpinned(by_tag) == ["actions/checkout@v4"]


def test_the_release_builds_signs_and_attests_every_service_image_for_both_architectures():
    release = yaml.safe_load(RELEASE_WORKFLOW.read_text())
    assert release[True]["push"]["tags"] == ["v*.*.*"]  # PyYAML reads the key `on` as True
    images = release["jobs"]["images"]
    assert images["strategy"]["matrix"]["service"] == ["web", "mailer", "stats", "autoscaler"]
    assert {p.name for p in (ROOT / "services").iterdir() if (p / "Dockerfile").exists()} == set(
        images["strategy"]["matrix"]["service"]
    )
    [build] = [s for s in images["steps"] if "docker/build-push-action" in s.get("uses", "")]
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert build["with"]["sbom"] is True and build["with"]["provenance"] == "mode=max"
    assert any("cosign sign" in s.get("run", "") for s in images["steps"])
    chart_steps = " ".join(s.get("run", "") for s in release["jobs"]["chart"]["steps"])
    assert "scripts/package-chart.sh" in chart_steps and "cosign sign" in chart_steps
    assert images["permissions"]["id-token"] == "write"  # keyless signing
