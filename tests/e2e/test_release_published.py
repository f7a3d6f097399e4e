"""A release as users install it: `make release-local` pushes the signed images, their SBOM
attestations and the signed chart to the local registry; the chart is installed from
oci://127.0.0.1:PORT/charts/offload after every signature is verified, and the nodes'
containerd pulls the four service images from that registry (none is on a node before).

Verification runs with the release's public key, and its negative control with a key pair
made for the test: the same command must refuse every artefact. After the install, each
pod's image id must be the digest that was verified.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
from kubernetes import client

from tests.e2e.clusters.providers import ROOT, Cluster, KindCluster, run

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

NAMESPACE = "offload-published"
RELEASE = "published"
COSIGN = Path("/var/cache/offload/release-tools/bin/cosign")
VALUES = Path(__file__).with_name("published-values.yaml")


def cosign_verify(
    public_key: Path, reference: str, command: str = "verify"
) -> subprocess.CompletedProcess[str]:
    # Key-based and offline: no transparency log, no Fulcio (nothing here reaches Sigstore).
    kind = ["--type", "spdxjson"] if command == "verify-attestation" else ["--output", "json"]
    return subprocess.run(
        [str(COSIGN), command, "--key", str(public_key), "--insecure-ignore-tlog", "--allow-http-registry",
         *kind, reference],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def attested_sbom_packages(public_key: Path, reference: str) -> set[str]:
    """The package names of the SPDX SBOM attested for `reference`, once its signature holds."""
    result = cosign_verify(public_key, reference, "verify-attestation")
    assert result.returncode == 0, f"{reference}: {result.stderr}"
    envelope = json.loads(result.stdout.splitlines()[0])  # a DSSE envelope per attestation
    statement = json.loads(base64.b64decode(envelope["payload"]))
    return {package["name"] for package in statement["predicate"]["packages"]}


def verified_digest(public_key: Path, reference: str) -> str:
    result = cosign_verify(public_key, reference)
    assert result.returncode == 0, f"{reference}: {result.stderr}"
    [signature] = json.loads(result.stdout)
    return signature["critical"]["image"]["docker-manifest-digest"]


def test_the_published_chart_installs_from_the_registry_after_its_signatures_are_verified(
    cluster: Cluster, admin: client.ApiClient, tmp_path: Path
):
    if not isinstance(cluster, KindCluster):
        pytest.skip("the local registry is on this machine's loopback: kind provider only")
    registry = cluster.use_local_registry()
    run(["make", "-C", str(ROOT), "release-local", f"IMAGE_TAG={cluster.tag}"], timeout=1800)
    published = json.loads((ROOT / "dist" / "release-local.json").read_text())
    assert published["registry"] == registry
    images = {
        svc: f"{registry}/offload/offload-{svc}@{i['digest']}" for svc, i in published["images"].items()
    }
    chart = f"{registry}/charts/offload@{published['chart']['digest']}"
    assert not {name for name in cluster.node_images() if name.startswith(f"{registry}/")}, "pre-imported"

    # Verify first: each image and the chart carry the release key's signature...
    release_key = Path(published["public_key"])
    for svc, reference in images.items():
        assert verified_digest(release_key, reference) == published["images"][svc]["digest"]
    assert verified_digest(release_key, chart) == published["chart"]["digest"]
    # ...and a key that did not sign them is refused (the check can fail).
    subprocess.run([str(COSIGN), "generate-key-pair"], cwd=tmp_path, env={"COSIGN_PASSWORD": ""},
                   check=True, capture_output=True)  # fmt: skip
    for reference in [*images.values(), chart]:
        assert cosign_verify(tmp_path / "cosign.pub", reference).returncode != 0, reference
    # Each image carries its SBOM as an attestation signed by the same key, naming what it runs.
    for svc, reference in images.items():
        packages = attested_sbom_packages(release_key, reference)
        assert {f"offload-{svc}", "offload-core", "pika", "opentelemetry-sdk", "libc6"} <= packages, svc
    assert cosign_verify(tmp_path / "cosign.pub", images["web"], "verify-attestation").returncode != 0

    try:
        cluster.helm(
            "install", RELEASE, published["chart"]["ref"], "--version", published["version"], "--plain-http",
            "-n", NAMESPACE, "--create-namespace", "-f", str(VALUES),
            "--set-json", f"networkPolicy.operatorsFrom={json.dumps(cluster.operators_from)}",
            "--wait", "--timeout", "10m", timeout=900,
        )  # fmt: skip
        # The pods run what was verified, pulled from the registry by the published defaults.
        running = pulled_images(admin, registry)
        for svc, image in published["images"].items():
            component = "stats-runner" if svc == "stats" else svc
            assert running[component] == (image["ref"], image["digest"]), component
        cluster.helm("test", RELEASE, "-n", NAMESPACE, "--timeout", "5m", timeout=600)
    finally:
        cluster.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "3m", check=False)
        client.CoreV1Api(admin).delete_namespace(NAMESPACE)


def pulled_images(admin: client.ApiClient, registry: str) -> dict[str, tuple[str, str]]:
    """component → (image, digest of its image id) of the release's pods whose image comes
    from `registry` (the stand-ins the provider loaded do not)."""
    selector = f"app.kubernetes.io/instance={RELEASE}"
    pods = client.CoreV1Api(admin).list_namespaced_pod(NAMESPACE, label_selector=selector)
    found: dict[str, tuple[str, str]] = {}
    for pod in pods.items:
        component = (pod.metadata.labels or {}).get("app.kubernetes.io/component", "")
        for status in pod.status.container_statuses or []:
            if not status.image.startswith(f"{registry}/"):
                continue
            found[component] = (status.image, status.image_id.rsplit("@", 1)[-1])
    return found
