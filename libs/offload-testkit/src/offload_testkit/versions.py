"""The pinned tool versions of tools/versions.env, for tests that need one (the Kubernetes
binaries' cache, the KEDA build), so no test spells a version of its own."""

from __future__ import annotations

import functools
from pathlib import Path

VERSIONS_FILE = Path(__file__).resolve().parents[4] / "tools" / "versions.env"


@functools.cache
def pins() -> dict[str, str]:
    """NAME -> version, from the file's NAME=value lines."""
    found = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            found[name.strip()] = value.strip()
    return found


def pinned(name: str) -> str:
    """The version pinned as `name` (e.g. KUBERNETES_VERSION); KeyError names what is missing."""
    try:
        return pins()[name]
    except KeyError:
        raise KeyError(f"{name} is not pinned in {VERSIONS_FILE}") from None
