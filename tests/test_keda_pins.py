"""KEDA is pinned in four places that must agree: the build script, the Makefile (image
tag), the testkit (manifests and image it deploys) and the kubeconform schemas of its CRDs."""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.clusters import keda

ROOT = Path(__file__).resolve().parents[1]


def pinned(path: str, pattern: str) -> str:
    found = re.search(pattern, (ROOT / path).read_text(), re.MULTILINE)
    assert found, f"no KEDA version in {path}"
    return found.group(1)


def test_every_keda_pin_names_the_same_version():
    versions = {
        "scripts/keda-build.sh": pinned("scripts/keda-build.sh", r"^KEDA_VERSION=(\S+)"),
        "Makefile": pinned("Makefile", r"^KEDA_VERSION := (\S+)"),
        "scripts/k8s-tools.sh": pinned("scripts/k8s-tools.sh", r"^KEDA_VERSION=(\S+)"),
        "tests.e2e.clusters.keda": keda.KEDA_VERSION,
    }
    assert len(set(versions.values())) == 1, versions
