"""scripts/lib.sh's build_once, the one way every build script builds a tool once per
version stamp: a second run with the same version builds nothing; a new version (the
control) builds again; a failed build leaves no stamp, so the next run tries again."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(tmp_path: Path, want: str, command: str = "true") -> int:
    """Run build_once with a build that counts its runs; the count so far."""
    counter = tmp_path / "runs"
    script = f"""
        set -euo pipefail
        source {ROOT}/scripts/lib.sh
        count() {{ echo run >> {counter}; {command}; }}
        build_once {tmp_path}/bin/.built {want} count
    """
    subprocess.run(["bash", "-c", script], check=False)
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def test_the_same_version_is_built_once(tmp_path):
    assert build(tmp_path, "v1") == 1
    assert build(tmp_path, "v1") == 1
    assert (tmp_path / "bin" / ".built").read_text().strip() == "v1"


def test_control_a_new_version_builds_again(tmp_path):
    assert build(tmp_path, "v1") == 1
    assert build(tmp_path, "v2") == 2


def test_a_failed_build_leaves_no_stamp(tmp_path):
    assert build(tmp_path, "v1", command="false") == 1
    assert not (tmp_path / "bin" / ".built").exists()
    assert build(tmp_path, "v1") == 2


def test_the_pins_reach_the_scripts_and_make():
    shown = subprocess.run(
        ["bash", "-c", f"source {ROOT}/scripts/lib.sh && echo $KEDA_VERSION"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    make = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "--eval", "show-keda: ; @echo $(KEDA_VERSION)", "show-keda"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    from offload_testkit.versions import pinned

    assert shown == make == pinned("KEDA_VERSION")
