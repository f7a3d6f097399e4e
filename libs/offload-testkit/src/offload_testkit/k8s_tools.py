"""Where `make k8s-tools` (scripts/k8s-tools.sh) leaves its binaries and schemas.

Tests ask for a tool by name; a missing one fails the test with the command that builds it,
rather than skipping it: a check that silently does not run is worse than a red one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

TOOLS = Path(os.environ.get("OFFLOAD_K8S_TOOLS", "/var/cache/offload/k8s-tools"))
CHECKOV = Path(os.environ.get("OFFLOAD_CHECKOV", "/var/cache/offload/checkov-venv/bin/checkov"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"missing {path}: run `make k8s-tools`", pytrace=False)
    return path


def tool(name: str) -> str:
    """The path of helm, kubeconform, kustomize, skaffold or actionlint, as a string for argv."""
    return str(_need(TOOLS / "bin" / name))


def checkov() -> str:
    return str(_need(CHECKOV))


def kubernetes_schemas() -> Path:
    """kubeconform's schema folder: Kubernetes' own kinds plus the KEDA and monitoring CRDs."""
    found = sorted((TOOLS / "schemas").glob("kubernetes-*")) if (TOOLS / "schemas").is_dir() else []
    return _need(found[-1] if found else TOOLS / "schemas" / "kubernetes-*")


def kubeconform_schema_locations() -> list[str]:
    """kubeconform's `-schema-location` arguments: Kubernetes' kinds, then the CRDs."""
    schemas = kubernetes_schemas()
    return [
        "-schema-location",
        f"{schemas}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
        "-schema-location",
        f"{schemas}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json",
    ]


def skaffold_schema(version: str) -> dict[str, Any]:
    """skaffold's published JSON schema for one config version (e.g. v4beta13)."""
    return json.loads(_need(TOOLS / "schemas" / "skaffold" / f"{version}.json").read_text())
