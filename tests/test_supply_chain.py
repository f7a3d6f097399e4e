"""Known vulnerabilities in the pinned Python dependencies, from PyPI's advisory data.

pip-audit (scripts/release-tools.sh installs it in a venv of its own) reads every pin of
requirements/constraints.txt, the versions the images and the venv install, and asks PyPI's
JSON API for advisories against each. A new advisory turns `make test` red until the pin
moves: that is the point of the check. Its negative control audits a pin with a published
advisory (requests 2.19.1, PYSEC-2018-28 / CVE-2018-18074) and must find it.

Where PyPI's per-version JSON API does not answer (a mirror serving only the simple index and
project pages), pip-audit can audit nothing: it reports every pin as "not found on PyPI".
The tests then skip, saying so, rather than pass on an audit that did not happen. The
e2e workflow runs the same audit on GitHub's runners (.github/workflows/e2e.yaml).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIP_AUDIT = (
    Path(os.environ.get("OFFLOAD_PIP_AUDIT_VENV", "/var/cache/offload/pip-audit-venv")) / "bin/pip-audit"
)

pytestmark = pytest.mark.slow


NOT_FOUND = "Dependency not found on PyPI"


def audit(requirements: Path, tmp_path: Path) -> dict[str, list[str]]:
    """package==version → ids of the advisories that affect it; skips the test when no pin
    could be audited at all."""
    report = tmp_path / "audit.json"
    result = subprocess.run(
        [str(PIP_AUDIT), "-r", str(requirements), "--no-deps", "--disable-pip",
         "--vulnerability-service", "pypi", "--progress-spinner", "off",
         "--format", "json", "--output", str(report)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert report.exists(), f"pip-audit wrote no report ({result.returncode}): {result.stderr}"
    found = json.loads(report.read_text())["dependencies"]
    if found and all(NOT_FOUND in d.get("skip_reason", "") for d in found):
        pytest.skip(
            f"no advisory data: PyPI's per-version JSON API does not answer here ({found[0]['skip_reason']})"
        )
    unaudited = [d["skip_reason"] for d in found if "skip_reason" in d]
    assert not unaudited, unaudited
    return {f"{d['name']}=={d['version']}": [v["id"] for v in d["vulns"]] for d in found if d.get("vulns")}


def test_no_pinned_python_dependency_has_a_known_vulnerability(tmp_path):
    assert PIP_AUDIT.exists(), f"{PIP_AUDIT} is missing: run scripts/release-tools.sh"
    assert audit(ROOT / "requirements" / "constraints.txt", tmp_path) == {}


def test_the_audit_finds_a_pin_with_a_published_advisory(tmp_path):
    vulnerable = tmp_path / "requirements.txt"
    vulnerable.write_text("requests==2.19.1\n")
    found = audit(vulnerable, tmp_path)
    assert "requests==2.19.1" in found
    assert {"PYSEC-2018-28", "GHSA-x84v-xcm2-53pg"} & set(found["requests==2.19.1"]), found
