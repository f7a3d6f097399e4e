"""Render k8s/base from charts/offload with k8s/render-values.yaml: one file per component
(web.yaml, mailer.yaml, rabbitmq.yaml, ...: the chart's template folders), and the
kustomization that lists them.

    python scripts/render_k8s.py          write the files
    python scripts/render_k8s.py --check  exit 1 and print a diff if a file is stale

The chart stays the one source: the plain manifests are its output, minus what only makes
sense under Helm (the chart label, "managed-by: Helm").
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "k8s" / "base"
HELM = Path(os.environ.get("OFFLOAD_K8S_TOOLS", "/var/cache/offload/k8s-tools")) / "bin" / "helm"
HEADER = "# Rendered from charts/offload by scripts/render_k8s.py with k8s/render-values.yaml: do not edit.\n"
HELM_ONLY = ("helm.sh/chart:", "app.kubernetes.io/managed-by: Helm")
SOURCE = re.compile(r"^# Source: offload/templates/(?:(?P<folder>[^/]+)/)?(?P<file>[^/]+)\.yaml$", re.M)
KUSTOMIZATION = """# Plain manifests for kubectl users, rendered from charts/offload (`make k8s-manifests`),
# one file per component; a test re-renders them and fails on any difference.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
"""


def render() -> dict[str, str]:
    """File name -> contents, for every file of k8s/base."""
    result = subprocess.run(
        [
            str(HELM), "template", "offload", str(ROOT / "charts" / "offload"),
            "--namespace", "offload", "-f", str(ROOT / "k8s" / "render-values.yaml"),
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    by_component: dict[str, list[str]] = {}
    for document in result.stdout.split("\n---\n"):
        source = SOURCE.search(document)
        if source is None:
            continue  # helm's leading separator
        component = source.group("folder") or source.group("file")  # networkpolicy.yaml is its own
        lines = [
            line for line in document.splitlines(keepends=True) if not line.strip().startswith(HELM_ONLY)
        ]
        by_component.setdefault(component, []).append("".join(lines).strip("\n") + "\n")
    files = {f"{name}.yaml": HEADER + "---\n".join(docs) for name, docs in sorted(by_component.items())}
    files["kustomization.yaml"] = KUSTOMIZATION + "".join(f"  - {name}\n" for name in sorted(files))
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    fresh = render()
    current = {path.name: path.read_text() for path in BASE.glob("*.yaml")}
    if not args.check:
        for name in set(current) - set(fresh):
            (BASE / name).unlink()
        for name, text in fresh.items():
            (BASE / name).write_text(text)
        print(f"wrote {len(fresh)} files into {BASE.relative_to(ROOT)}")
        return 0
    stale = sorted(name for name in set(fresh) | set(current) if fresh.get(name) != current.get(name))
    for name in stale:
        sys.stdout.writelines(
            difflib.unified_diff(
                current.get(name, "").splitlines(True), fresh.get(name, "").splitlines(True), name, "chart"
            )
        )
    if stale:
        print(f"\nk8s/base is stale ({', '.join(stale)}): run `make k8s-manifests`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
