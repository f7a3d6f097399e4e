"""k8s/ (plain manifests rendered from the chart, a kustomize overlay, the kind config) and
skaffold.yaml, checked with the real helm, kustomize and kubeconform.

skaffold.yaml is read by the real skaffold (built from its Go module by
scripts/k8s-tools.sh): `skaffold diagnose` for each profile, and `skaffold render`, whose
manifests must carry every image skaffold builds and pass kubeconform. It is also validated,
with each profile applied, against skaffold's own published schema for its apiVersion, and
checked for what it must wire up: every artifact's Dockerfile and build arg, every image
value it sets exists in the chart and ends up in the rendered pods, the profiles' patches
point at existing paths, and the port-forwards name real Services."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import jsonpatch
import jsonschema
import pytest
import yaml

from offload_testkit.k8s_tools import kubeconform_schema_locations, skaffold_schema, tool

ROOT = Path(__file__).resolve().parents[2]
SKAFFOLD = yaml.safe_load((ROOT / "skaffold.yaml").read_text())


def run(*args: str, cwd: Path = ROOT) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def docs_of(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def test_plain_manifests_are_the_charts_output():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render_k8s.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_plain_manifests_commit_no_secret():
    docs = [d for path in sorted((ROOT / "k8s" / "base").glob("*.yaml")) for d in docs_of(path.read_text())]
    assert not [d for d in docs if d["kind"] == "Secret"]
    assert {d["kind"] for d in docs} >= {"Deployment", "StatefulSet", "Service", "Role"}


def test_dev_overlay_builds_and_validates(tmp_path):
    overlay = tmp_path / "k8s"
    # A copy, so the generated credentials of this test never land in the work tree.
    run("cp", "-r", str(ROOT / "k8s"), str(overlay))
    for env in ("rabbitmq.env", "redis.env", "erlang-cookie.env", "web.env"):
        (overlay / "overlays" / "dev" / env).unlink(missing_ok=True)
    run(str(ROOT / "scripts" / "k8s-secrets.sh"), str(overlay / "overlays" / "dev"))
    first = (overlay / "overlays" / "dev" / "rabbitmq.env").read_text()
    run(str(ROOT / "scripts" / "k8s-secrets.sh"), str(overlay / "overlays" / "dev"))
    assert (overlay / "overlays" / "dev" / "rabbitmq.env").read_text() == first  # never rotated by a re-run
    built = run(tool("kustomize"), "build", str(overlay / "overlays" / "dev"))
    docs = docs_of(built)
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"offload-dev"}
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    assert {re.sub(r"-[a-z0-9]{10}$", "", n) for n in secrets} == {
        "offload-rabbitmq",
        "offload-redis",
        "offload-rabbitmq-erlang-cookie",
        "offload-web",
    }
    # kustomize rewrote every reference to the generated (hash-suffixed) Secret names.
    references = set(re.findall(r"secretKeyRef:\s*\n?\s*key: \S+\s*\n\s*name: (\S+)", built))
    references |= set(
        re.findall(
            r"(?:secretName|name): (offload-(?:rabbitmq|redis|web)(?:-erlang-cookie)?-[a-z0-9]{10})", built
        )
    )
    assert references and references <= set(secrets)
    images = {
        c["image"]
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"offload-{s}:dev" for s in ("web", "mailer", "stats", "autoscaler")}
    web = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "offload-web")
    assert web["spec"]["replicas"] == 1
    path = tmp_path / "built.yaml"
    path.write_text(built)
    run(tool("kubeconform"), "-strict", *kubeconform_schema_locations(), str(path))


def test_kind_config_maps_the_web_node_port():
    kind = yaml.safe_load((ROOT / "k8s" / "kind-cluster.yaml").read_text())
    assert kind["apiVersion"] == "kind.x-k8s.io/v1alpha4" and kind["kind"] == "Cluster"
    mappings = [m for n in kind["nodes"] for m in n.get("extraPortMappings", [])]
    values = yaml.safe_load((ROOT / "k8s" / "kind-values.yaml").read_text())
    assert values["web"]["service"]["nodePort"] in {m["containerPort"] for m in mappings}
    assert all(m["listenAddress"] == "127.0.0.1" for m in mappings)


def test_skaffold_artifacts_build_from_the_dockerfiles_with_the_base_image_arg():
    assert SKAFFOLD["apiVersion"] == "skaffold/v4beta13" and SKAFFOLD["kind"] == "Config"
    artifacts = SKAFFOLD["build"]["artifacts"]
    assert [a["image"] for a in artifacts] == [
        f"offload-{s}" for s in ("web", "mailer", "stats", "autoscaler")
    ]
    for artifact in artifacts:
        dockerfile = ROOT / artifact["context"] / artifact["docker"]["dockerfile"]
        assert "ARG BASE_IMAGE" in dockerfile.read_text(), dockerfile
        assert "BASE_IMAGE" in artifact["docker"]["buildArgs"]


def skaffolds_own_schema() -> dict:
    return skaffold_schema(SKAFFOLD["apiVersion"].removeprefix("skaffold/"))


def test_skaffold_config_matches_skaffolds_schema():
    validator = jsonschema.Draft7Validator(skaffolds_own_schema())
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(SKAFFOLD)]
    assert not errors
    # A profile's patches are applied to the base config; the result must be valid too.
    for profile in SKAFFOLD["profiles"]:
        patched = jsonpatch.apply_patch(SKAFFOLD, profile.get("patches", []))
        assert not [e.message for e in validator.iter_errors(patched)], profile["name"]
    # The schema is strict: a misspelt field is refused, so the check above can fail.
    misspelt = {**SKAFFOLD, "build": {**SKAFFOLD["build"], "artefacts": []}}
    assert not validator.is_valid(misspelt)


def skaffold_set_values(release: dict) -> dict[str, str]:
    """What skaffold would pass as --set: IMAGE_REPO_x / IMAGE_TAG_x filled in."""
    filled = {}
    for key, template in release["setValueTemplates"].items():
        match = re.fullmatch(r"\{\{ \.IMAGE_(REPO|TAG)_(\w+) \}\}", template)
        assert match, template
        kind, image = match.groups()
        filled[key] = f"registry.test/{image.replace('_', '-')}" if kind == "REPO" else "abc123"
    return filled


def skaffold_render(release: dict, *args: str) -> list[dict]:
    """`helm template` of skaffold's helm release, as skaffold would deploy it."""
    chart = str(ROOT / release["chartPath"])
    return docs_of(run(tool("helm"), "template", release["name"], chart, "-n", release["namespace"], *args))


def test_skaffold_image_values_reach_the_rendered_pods():
    [release] = SKAFFOLD["deploy"]["helm"]["releases"]
    assert (ROOT / release["chartPath"] / "Chart.yaml").exists()
    sets = skaffold_set_values(release)
    args = []
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    docs = skaffold_render(release, *args)  # the chart's strict schema refuses a key it does not have
    images = {
        c["image"]
        for d in docs
        if d["kind"] in ("Deployment", "Pod")
        for c in (d["spec"]["template"]["spec"] if d["kind"] == "Deployment" else d["spec"])["containers"]
    }
    built = {f"registry.test/{a['image']}:abc123" for a in SKAFFOLD["build"]["artifacts"]}
    assert built <= images and not {i for i in images if i.startswith("offload-")}


def resolve(document: dict, pointer: str) -> object:
    node: object = document
    for part in pointer.strip("/").split("/")[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]  # type: ignore[index]  # walks untyped YAML
    return node


def test_skaffold_profiles_patch_existing_paths_and_forward_to_real_services():
    profiles = {p["name"]: p for p in SKAFFOLD["profiles"]}
    assert set(profiles) == {"kind", "dev"}
    for patch in profiles["kind"]["patches"]:
        assert patch["op"] in ("add", "replace", "remove")
        resolve(SKAFFOLD, patch["path"])  # the parent of every patched path exists
    added = [p["value"] for p in profiles["kind"]["patches"] if p["path"] == "/build/artifacts/-"]
    for artifact in added:
        assert (ROOT / artifact["docker"]["dockerfile"]).exists()
    [values] = [p["value"] for p in profiles["kind"]["patches"] if p["path"].endswith("/valuesFiles")]
    [release] = SKAFFOLD["deploy"]["helm"]["releases"]
    args = []
    for values_file in values:
        args += ["-f", str(ROOT / values_file)]
    services = {d["metadata"]["name"]: d for d in skaffold_render(release, *args) if d["kind"] == "Service"}
    for forward in profiles["dev"]["portForward"]:
        service = services[forward["resourceName"]]
        assert forward["namespace"] == release["namespace"]
        assert forward["port"] in {p["port"] for p in service["spec"]["ports"]}, forward


@pytest.mark.parametrize("values", ["k8s/kind-values.yaml", "k8s/render-values.yaml"])
def test_k8s_values_files_lint(values):
    run(tool("helm"), "lint", "--strict", str(ROOT / "charts" / "offload"), "-f", str(ROOT / values))


def skaffold(*args: str, cwd: Path = ROOT) -> str:
    """The real skaffold binary (built by `make k8s-tools`), with helm on its PATH, offline."""
    env = {
        **os.environ,
        "PATH": f"{Path(tool('helm')).parent}{os.pathsep}{os.environ['PATH']}",
        "SKAFFOLD_UPDATE_CHECK": "false",
        "SKAFFOLD_INTERACTIVE": "false",
    }
    result = subprocess.run(
        [tool("skaffold"), *args], capture_output=True, text=True, timeout=180, cwd=cwd, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("profile", [None, "kind", "dev"])
def test_skaffold_diagnose_reads_the_config(profile):
    config = yaml.safe_load(skaffold("diagnose", "--yaml-only", *(["-p", profile] if profile else [])))
    images = [a["image"] for a in config["build"]["artifacts"]]
    expected = [f"offload-{s}" for s in ("web", "mailer", "stats", "autoscaler")]
    assert images == expected + (["offload-rabbitmq"] if profile == "kind" else [])


def test_skaffold_diagnose_refuses_a_misspelt_field(tmp_path):
    """A guard that the check above can fail."""
    broken = {**SKAFFOLD, "build": {**SKAFFOLD["build"], "artefacts": []}}
    (tmp_path / "skaffold.yaml").write_text(yaml.safe_dump(broken))
    result = subprocess.run(
        [tool("skaffold"), "diagnose", "--yaml-only"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert result.returncode != 0 and "artefacts" in result.stdout + result.stderr


@pytest.mark.parametrize("profile", [None, "kind"])
def test_skaffold_render_wires_every_built_image_into_valid_manifests(profile, tmp_path):
    rendered = skaffold(
        "render", "--tag", "t123", "--digest-source", "tag", "--offline=true",
        *(["-p", profile] if profile else []),
    )  # fmt: skip
    docs = docs_of(rendered)
    images = set()
    for doc in docs:
        spec = (
            doc["spec"]["template"]["spec"]
            if doc["kind"] in ("Deployment", "StatefulSet")
            else doc.get("spec")
        )
        if doc["kind"] in ("Deployment", "StatefulSet", "Pod"):
            images |= {c["image"] for c in spec["containers"]}
    artifacts = yaml.safe_load(skaffold("diagnose", "--yaml-only", *(["-p", profile] if profile else [])))
    built = {f"{a['image']}:t123" for a in artifacts["build"]["artifacts"]}
    assert built <= images, images
    # Nothing of ours runs an image skaffold did not build.
    assert {i for i in images if i.startswith("offload-")} == built
    path = tmp_path / "rendered.yaml"
    path.write_text(rendered)
    run(tool("kubeconform"), "-strict", *kubeconform_schema_locations(), str(path))
