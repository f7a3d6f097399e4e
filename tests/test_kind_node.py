"""The kind node recipe's host-side parts, apart from a cluster (the e2e suite runs the
cluster itself): the `docker` shim kind runs through, and the pod network manifest kind
fills in.

The shim is run against a stand-in `docker` that prints its arguments: what is checked is the
command line the shim hands on, which is the shim's whole job; the real engine takes those
arguments in every e2e run on the kind provider.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHIM_DIR = ROOT / "tests" / "e2e" / "clusters" / "kind-bin"
MANIFEST = ROOT / "deploy" / "kind-node" / "files" / "kind" / "manifests" / "default-cni.yaml"


def shim(tmp_path: Path, *args: str) -> list[str]:
    real = tmp_path / "real"
    real.mkdir(exist_ok=True)
    echo = real / "docker"
    echo.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    echo.chmod(echo.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{SHIM_DIR}:{real}:/usr/bin:/bin"}
    result = subprocess.run(
        ["docker", *args], env=env, capture_output=True, text=True, timeout=30, check=True
    )
    return result.stdout.splitlines()


def bounding_set() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    raise AssertionError("no CapBnd in /proc/self/status")


def test_the_shim_spells_out_privileged_as_the_capabilities_this_host_holds(tmp_path):
    args = shim(tmp_path, "run", "--name", "node", "--privileged", "--tmpfs", "/run", "image")
    everything = (1 << (int(Path("/proc/sys/kernel/cap_last_cap").read_text()) + 1)) - 1
    if bounding_set() == everything:
        assert args == ["run", "--name", "node", "--privileged", "--tmpfs", "/run", "image"]
        return
    assert "--privileged" not in args
    added = {args[i + 1] for i, a in enumerate(args) if a == "--cap-add"}
    # CAP_SYS_ADMIN (21) is what nodes need most; CAP_SYS_RESOURCE (24) is what these hosts lack.
    assert ("SYS_ADMIN" in added) == bool(bounding_set() >> 21 & 1)
    assert ("SYS_RESOURCE" in added) == bool(bounding_set() >> 24 & 1)
    assert args[:3] == ["run", "--name", "node"] and args[-3:] == ["--tmpfs", "/run", "image"]
    assert "systempaths=unconfined" in args


def test_the_shim_drops_privileged_from_exec_and_passes_the_rest(tmp_path):
    assert shim(tmp_path, "exec", "--privileged", "node", "cat", "/kind/version") == [
        "exec",
        "node",
        "cat",
        "/kind/version",
    ]
    assert shim(tmp_path, "inspect", "--privileged") == ["inspect", "--privileged"]


def test_kind_fills_the_pod_subnet_into_the_network_manifest():
    """kind templates the manifest only when it carries its marker sentence
    (pkg/cluster/internal/create/actions/installcni/cni.go); without it the agents would get
    the placeholder itself as their pod subnet."""
    text = MANIFEST.read_text()
    assert "would you kindly template this file" in text
    daemonsets = [d for d in yaml.safe_load_all(text) if d["kind"] == "DaemonSet"]
    assert {d["metadata"]["name"] for d in daemonsets} == {"offload-node-network", "offload-network-policies"}
    for daemonset in daemonsets:
        [container] = daemonset["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["POD_SUBNET"] == "{{ .PodSubnet }}"
        assert container["imagePullPolicy"] == "Never"
        assert "privileged" not in container["securityContext"]
