"""One version for the chart and the images, written down once per release.

`charts/offload/Chart.yaml` carries it twice (version, appVersion: the images' tag), the
service packages carry it, and CHANGELOG.md has a section for it: the release workflow takes
the notes from there (scripts/release_notes.py) and scripts/package-chart.sh refuses a tag
that Chart.yaml does not name. Each check has its control on a changed copy."""

from __future__ import annotations

import subprocess
import tarfile
import tomllib
from pathlib import Path

import yaml

from offload_testkit.k8s_tools import tool
from scripts import release_notes

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "offload"


def chart_versions(chart_yaml: str) -> tuple[str, str]:
    chart = yaml.safe_load(chart_yaml)
    return str(chart["version"]), str(chart["appVersion"])


def package_versions() -> set[str]:
    paths = [ROOT / "libs" / "offload-core" / "pyproject.toml", *ROOT.glob("services/*/pyproject.toml")]
    return {tomllib.loads(p.read_text())["project"]["version"] for p in paths}


def test_chart_and_app_versions_move_together_with_the_packages_and_the_changelog():
    version, app_version = chart_versions((CHART / "Chart.yaml").read_text())
    assert version == app_version
    assert package_versions() == {version}
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert release_notes.versions(changelog)[0] == version
    assert release_notes.section(changelog, version)


def test_the_version_checks_catch_a_chart_bumped_alone():
    text = (CHART / "Chart.yaml").read_text()
    bumped = text.replace("\nversion: ", "\nversion: 9.", 1)
    version, app_version = chart_versions(bumped)
    assert version != app_version


def test_release_notes_are_the_version_section_and_a_missing_one_fails():
    changelog = (
        "# Changelog\n\n## [Unreleased]\n\n"
        "## [1.2.0] - 2026-01-02\n\n- two\n\n## [1.1.0] - 2025-01-01\n\n- one\n"
    )
    assert release_notes.versions(changelog) == ["1.2.0", "1.1.0"]
    assert release_notes.section(changelog, "1.2.0") == "- two\n"
    assert release_notes.section(changelog, "1.1.0") == "- one\n"
    assert release_notes.section(changelog, "1.3.0") is None
    missing = subprocess.run(
        ["python3", str(ROOT / "scripts" / "release_notes.py"), "99.0.0"], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no notes for 99.0.0" in missing.stderr


def package(version: str, registry: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "package-chart.sh"), version, registry, str(out)],
        capture_output=True, text=True, env={"HELM": tool("helm"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def test_the_packaged_chart_defaults_to_the_release_images(tmp_path):
    """helm install of the package, with no values, runs that registry's images at that version."""
    version, _ = chart_versions((CHART / "Chart.yaml").read_text())
    result = package(version, "ghcr.io/example/", tmp_path)
    assert result.returncode == 0, result.stderr
    packaged = Path(result.stdout.strip())
    with tarfile.open(packaged) as tar:
        member = tar.extractfile("offload/Chart.yaml")
        assert member is not None
        assert chart_versions(member.read().decode()) == (version, version)
    rendered = subprocess.run([tool("helm"), "template", "r", str(packaged)], capture_output=True, text=True)
    assert rendered.returncode == 0, rendered.stderr
    images = {
        c["image"]
        for d in yaml.safe_load_all(rendered.stdout)
        if d and d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {
        f"ghcr.io/example/offload-{s}:{version}" for s in ("web", "mailer", "stats", "autoscaler")
    }


def test_packaging_refuses_a_version_the_chart_does_not_name(tmp_path):
    result = package("99.0.0", "ghcr.io/example/", tmp_path)
    assert result.returncode == 2 and "the release is 99.0.0" in result.stderr
    assert not list(tmp_path.glob("*.tgz"))
