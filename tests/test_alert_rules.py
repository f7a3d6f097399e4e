"""The alert rules parse and behave as their promtool unit tests say."""

from __future__ import annotations

import subprocess
from pathlib import Path

RULES = Path(__file__).resolve().parents[1] / "deploy/prometheus"


def test_rules_pass_promtool_check_and_unit_tests():
    check = subprocess.run(
        ["promtool", "check", "rules", "offload-rules.yaml"], cwd=RULES, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(
        ["promtool", "test", "rules", "offload-rules.test.yaml"], cwd=RULES, capture_output=True, text=True
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr
