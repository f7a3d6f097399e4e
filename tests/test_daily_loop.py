"""`make check`, the daily loop: it collects only tests that need no more than the broker,
Redis, Python and shellcheck, and the pull-request workflow runs it."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def check_marker_expression() -> str:
    """The -m expression of the pytest command `make check` runs."""
    plan = subprocess.run(
        ["make", "-n", "check"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    [command] = [line for line in plan.splitlines() if "pytest" in line]
    words = shlex.split(command.split("&&")[-1])
    return words[words.index("-m") + 1]


def collected(expression: str | None, *paths: str) -> list[str]:
    args = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:logging", *paths]
    if expression is not None:
        args += ["-m", expression]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120).stdout
    return [line for line in out.splitlines() if "::" in line]


def test_make_check_leaves_kubernetes_and_browser_tests_to_make_test():
    """Control: the same files collect those tests without the expression."""
    expression = check_marker_expression()
    needing_more = (
        "services/autoscaler/tests/test_kubernetes_target.py",  # kube_control_plane, marked by the kit
        "services/autoscaler/tests/test_leader_election.py",
        "libs/offload-core/tests/test_page_headers.py",  # chromium
    )
    everything = collected(None, *needing_more)
    kept = collected(expression, *needing_more)
    assert any("test_reads_and_scales_through_the_scale_subresource" in t for t in everything)
    assert any("test_an_injected_inline_script_does_not_run" in t for t in everything)
    assert not any(re.search(r"scale_subresource|leads_and_holds|inline_script", t) for t in kept), kept
    # Tests of the same files that need nothing more stay in the loop.
    assert any("test_leader_election_settings_from_the_environment" in t for t in kept)
    assert any("test_the_policy_allows_no_script" in t for t in kept)


def test_the_pull_request_workflow_runs_make_check():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "check.yaml").read_text())
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the key `on` as True
    steps = workflow["jobs"]["check"]["steps"]
    assert any("make check" in step.get("run", "") for step in steps)


def test_every_make_target_that_runs_tests_gives_them_the_rabbitmq_tree():
    """A test that starts a private broker runs RabbitMQ from the tree the Makefile names;
    a target without it fell back to whatever RabbitMQ the host had (none on a new machine)."""
    for target in ("check", "test", "e2e", "container-test"):
        plan = subprocess.run(
            ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        runs = [line for line in plan.splitlines() if "bin/pytest" in line]
        assert runs and all("OFFLOAD_RABBITMQ_TREE=" in line for line in runs), (target, runs)


def test_make_test_runs_the_timing_tests_alone_after_the_rest():
    """`make test` runs most tests on two workers and the `timing` ones (a server held to a
    deadline under load) afterwards in one process: between them, each test once. The
    control is the same file collected without the expressions."""
    plan = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    runs = [shlex.split(line.split("&&")[-1]) for line in plan.splitlines() if "bin/pytest" in line]
    assert len(runs) == 2, runs
    parallel, alone = (words[words.index("-m") + 1] for words in runs)
    assert "-n" in runs[0] and "-n" not in runs[1]
    timed = "services/web/tests/test_slow_clients.py"
    everything = collected(None, timed)
    assert everything, "the control collected nothing"
    assert collected(parallel, timed) == []
    assert collected(alone, timed) == everything
    assert collected(alone, "services/web/tests/test_app.py") == []
    assert collected(parallel, "services/web/tests/test_app.py")
