"""Render k8s/base/offload.yaml from charts/offload with k8s/render-values.yaml.

    python scripts/render_k8s.py          write the file
    python scripts/render_k8s.py --check  exit 1 and print a diff if the file is stale

The chart stays the one source: the plain manifests are its output, minus what only makes
sense under Helm (the chart label, "managed-by: Helm").
"""

from __future__ import annotations

import argparse
import difflib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "k8s" / "base" / "offload.yaml"
HELM = Path(os.environ.get("OFFLOAD_K8S_TOOLS", "/var/cache/offload/k8s-tools")) / "bin" / "helm"
HEADER = "# Rendered from charts/offload by scripts/render_k8s.py with k8s/render-values.yaml: do not edit.\n"
HELM_ONLY = ("helm.sh/chart:", "app.kubernetes.io/managed-by: Helm")


def render() -> str:
    result = subprocess.run(
        [
            str(HELM), "template", "offload", str(ROOT / "charts" / "offload"),
            "--namespace", "offload", "-f", str(ROOT / "k8s" / "render-values.yaml"),
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = [
        line for line in result.stdout.splitlines(keepends=True) if not line.strip().startswith(HELM_ONLY)
    ]
    return HEADER + "".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    fresh = render()
    if not args.check:
        OUTPUT.write_text(fresh)
        print(f"wrote {OUTPUT.relative_to(ROOT)}")
        return 0
    current = OUTPUT.read_text() if OUTPUT.exists() else ""
    if current == fresh:
        return 0
    sys.stdout.writelines(
        difflib.unified_diff(current.splitlines(True), fresh.splitlines(True), str(OUTPUT), "chart")
    )
    print("\nk8s/base/offload.yaml is stale: run `make k8s-manifests`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
