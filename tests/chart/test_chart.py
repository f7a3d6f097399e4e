"""charts/offload checked with the real tools: helm lint --strict and helm template for every
ci/*-values.yaml, kubeconform (strict, with the KEDA and prometheus-operator CRD schemas),
checkov, and assertions on what the templates render. `make k8s-tools` builds the tools."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from offload_autoscaler.external_scaler import trigger_of
from offload_autoscaler.spec import parse_config
from offload_testkit.k8s_tools import checkov, kubeconform_schema_locations, tool

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "offload"
CI_VALUES = sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))
NAMESPACE = "offload"

# checkov findings we accept, each for a reason (also in charts/offload/README.md).
CHECKOV_EXCEPTIONS = {
    "CKV_K8S_11": "no CPU limits on purpose: they throttle gunicorn and the runners; requests are set",
    "CKV_K8S_15": "pullPolicy is a value; IfNotPresent suits immutable release tags",
    "CKV_K8S_35": "broker and Redis URLs are composed from Secret keys by $(VAR) expansion, which needs env",
    "CKV_K8S_40": "RabbitMQ and Redis images run as their own UID 999 (a value)",
    "CKV_K8S_43": "tags, not digests, by default; a digest can be given as the tag value",
}
# Only these objects may break these rules.
CHECKOV_OBJECT_EXCEPTIONS = {
    ("CKV_K8S_38", f"Deployment.{NAMESPACE}.r-offload-autoscaler"): "the autoscaler calls the API server",
    (
        "CKV_K8S_38",
        f"StatefulSet.{NAMESPACE}.r-offload-rabbitmq",
    ): "a clustered broker's peer discovery reads Endpoints",
    ("CKV_K8S_8", f"Pod.{NAMESPACE}.r-offload-test"): "a one-shot `helm test` pod needs no probes",
    ("CKV_K8S_9", f"Pod.{NAMESPACE}.r-offload-test"): "a one-shot `helm test` pod needs no probes",
}


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("helm"), *args], capture_output=True, text=True, timeout=120)


def render(*values: str, **sets: str) -> list[dict[str, Any]]:
    args = ["template", "r", str(CHART), "--namespace", NAMESPACE]
    for name in values:
        args += ["-f", str(CHART / "ci" / name)]
    for key, value in sets.items():
        args += ["--set", f"{key.replace('__', '.')}={value}"]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    specs = {}
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            specs[d["metadata"]["name"]] = d["spec"]["template"]["spec"]
        elif d["kind"] == "Pod":
            specs[d["metadata"]["name"]] = d["spec"]
    return specs


@pytest.mark.parametrize("values", [None, *CI_VALUES])
def test_helm_lint_strict(values):
    args = ["lint", "--strict", str(CHART), "--namespace", NAMESPACE]
    if values:
        args += ["-f", str(CHART / "ci" / values)]
    result = helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", [None, *CI_VALUES])
def test_rendered_manifests_pass_kubeconform_strict(values, tmp_path):
    result = helm(
        "template",
        "r",
        str(CHART),
        "--namespace",
        NAMESPACE,
        *(["-f", str(CHART / "ci" / values)] if values else []),
    )
    assert result.returncode == 0, result.stderr
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(result.stdout)
    check = subprocess.run(
        [
            tool("kubeconform"),
            "-strict",
            "-summary",
            "-output",
            "json",
            *kubeconform_schema_locations(),
            str(manifests),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    summary = json.loads(check.stdout)["summary"]
    assert check.returncode == 0, check.stdout
    # Every object was checked against a schema: none skipped for want of one.
    assert summary["invalid"] == summary["errors"] == summary["skipped"] == 0 and summary["valid"] > 10


def test_kubeconform_would_catch_a_wrong_field(tmp_path):
    """The schemas are strict: a guard that the check above can fail."""
    docs = render()
    deployment = by_kind(docs, "Deployment")["r-offload-web"]
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    deployment["spec"]["replicas"] = "two"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(deployment))
    check = subprocess.run(
        [
            tool("kubeconform"),
            "-strict",
            *kubeconform_schema_locations(),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 1 and "terminationGracePeriod" in check.stdout


@pytest.mark.parametrize(
    ("values", "autoscaled"),
    [(None, True), ("keda-values.yaml", True), ("minimal-values.yaml", False)],
)
def test_runner_replicas_are_omitted_when_autoscaled(values, autoscaled):
    deployments = by_kind(render(*([values] if values else [])), "Deployment")
    for runner in ("r-offload-mailer", "r-offload-stats-runner"):
        assert ("replicas" in deployments[runner]["spec"]) is not autoscaled, runner
    # The web tier is never autoscaled by queue depth: its count is always set.
    assert "replicas" in deployments["r-offload-web"]["spec"]


def test_every_pod_runs_locked_down():
    for name, spec in pod_specs(render("network-policies-values.yaml")).items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            # The helm test pod and the topology Job run to completion: nothing to probe.
            if name != "r-offload-test" and not name.startswith("r-offload-topology-"):
                assert "livenessProbe" in container and "readinessProbe" in container, name
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"], name
        # Only the autoscaler talks to the API server.
        assert spec.get("automountServiceAccountToken") is (
            None if name == "r-offload-autoscaler" else False
        ), name


def test_runners_get_longer_to_stop_than_their_drain():
    docs = render(runners__gracePeriodSeconds="40")
    for name, spec in pod_specs(docs).items():
        if name in ("r-offload-mailer", "r-offload-stats-runner"):
            env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
            assert env["OFFLOAD_GRACE_PERIOD"] == "40"
            assert spec["terminationGracePeriodSeconds"] > 40


def test_autoscaler_rbac_is_no_wider_than_the_scale_of_its_runners():
    docs = render()
    assert not by_kind(docs, "ClusterRole") and not by_kind(docs, "ClusterRoleBinding")
    [role] = by_kind(docs, "Role").values()
    assert role["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments/scale"],
            "resourceNames": ["r-offload-mailer", "r-offload-stats-runner"],
            "verbs": ["get", "update", "patch"],
        },
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]},
    ]
    [binding] = by_kind(docs, "RoleBinding").values()
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "r-offload-autoscaler", "namespace": NAMESPACE}
    ]
    # Other engines need no RBAC at all.
    assert not by_kind(render("keda-values.yaml"), "Role")


def test_leader_election_adds_its_own_lease_and_standby_replicas():
    docs = render(autoscaler__leaderElection__enabled="true", autoscaler__replicas="2")
    [role] = by_kind(docs, "Role").values()
    assert role["rules"][2:] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["r-offload-autoscaler"],
            "verbs": ["get", "update"],
        },
    ]
    deployment = by_kind(docs, "Deployment")["r-offload-autoscaler"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["OFFLOAD_AUTOSCALER_LEADER_ELECTION"]["value"] == "on"
    assert env["OFFLOAD_AUTOSCALER_LEASE_NAME"]["value"] == "r-offload-autoscaler"
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # Without it: one replica, replaced (never two decision makers), and no Lease rights.
    default = by_kind(render(), "Deployment")["r-offload-autoscaler"]
    assert default["spec"]["replicas"] == 1 and default["spec"]["strategy"] == {"type": "Recreate"}


def test_expected_wait_seconds_switches_a_runner_to_the_wait_time_mode(monkeypatch):
    """With mailer.autoscaling.expectedWaitSeconds the mailer's trigger is ExpectedWaitTime
    (the autoscaler's parser accepts it); the stats runner, left at 0, keeps QueueLength."""
    docs = render(mailer__autoscaling__expectedWaitSeconds="5", mailer__autoscaling__initialThroughput="8")
    config = by_kind(docs, "ConfigMap")["r-offload-autoscaler"]
    monkeypatch.setenv("OFFLOAD_MANAGEMENT_URL", "http://u:p@rabbitmq:15672")
    specs = {s.name: s for s in parse_config(yaml.safe_load(config["data"]["autoscaler.yaml"]))}
    [mailer], [stats] = specs["mailer"].triggers, specs["stats-runner"].triggers
    assert (mailer.mode, mailer.value, mailer.initial_throughput) == ("ExpectedWaitTime", 5, 8.0)
    assert (stats.mode, stats.value) == ("QueueLength", 1000)
    assert "r-offload-external-scaler" not in by_kind(docs, "Deployment")  # our autoscaler has the mode


def test_with_keda_expected_wait_is_an_external_trigger_served_by_the_release():
    """KEDA has no ExpectedWaitTime mode: the mailer's trigger is `type: external`, pointed at
    the release's external scaler, with metadata the scaler itself accepts (its own parser)
    and no credentials; the scaler reads the management URL from the broker's Secret. The
    stats runner keeps KEDA's rabbitmq trigger. Control: without expectedWaitSeconds there is
    no scaler and no external trigger."""
    docs = render("keda-expected-wait-values.yaml")
    objects = by_kind(docs, "ScaledObject")
    [trigger] = objects["r-offload-mailer"]["spec"]["triggers"]
    assert trigger["type"] == "external" and "authenticationRef" not in trigger
    metadata = trigger["metadata"]
    assert metadata["scalerAddress"] == f"r-offload-external-scaler.{NAMESPACE}.svc:9090"
    accepted = trigger_of(metadata, "http://u:p@rabbitmq:15672")
    assert (accepted.mode, accepted.value, accepted.initial_throughput) == ("ExpectedWaitTime", 5.0, 8.0)
    assert accepted.queue_regex == r"^mailer\.signups\.(high|low)$"
    [stats] = objects["r-offload-stats-runner"]["spec"]["triggers"]
    assert stats["type"] == "rabbitmq"
    scaler = by_kind(docs, "Deployment")["r-offload-external-scaler"]
    [container] = scaler["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["offload-external-scaler"]
    env = {e["name"]: e for e in container["env"]}
    assert env["OFFLOAD_EXTERNAL_SCALER_MANAGEMENT_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "r-offload-rabbitmq", "key": "monitoring-url"}
    }
    assert by_kind(docs, "Service")["r-offload-external-scaler"]["spec"]["ports"][0]["port"] == 9090
    # Only KEDA's operator reaches the scaler's gRPC port; the scaler reaches the management API.
    policies = by_kind(docs, "NetworkPolicy")
    [grpc_in] = [
        r for r in policies["r-offload-external-scaler"]["spec"]["ingress"] if r["ports"][0]["port"] == 9090
    ]
    assert grpc_in["from"][0]["podSelector"] == {"matchLabels": {"app": "keda-operator"}}
    [management] = [
        r
        for r in policies["r-offload-rabbitmq"]["spec"]["ingress"]
        if r["ports"] == [{"protocol": "TCP", "port": 15672}]
    ]
    components = [p.get("podSelector", {}).get("matchLabels", {}) for p in management["from"]]
    assert {"app.kubernetes.io/component": "external-scaler"}.items() <= components[-1].items()
    # Control: QueueLength through KEDA alone.
    plain = render("keda-values.yaml")
    assert "r-offload-external-scaler" not in by_kind(plain, "Deployment")
    assert all(
        t["type"] == "rabbitmq"
        for o in by_kind(plain, "ScaledObject").values()
        for t in o["spec"]["triggers"]
    )


def test_the_rendered_autoscaler_config_is_accepted_by_the_autoscaler(monkeypatch):
    """The ConfigMap goes through the autoscaler's own parser, as at its start in the cluster."""
    config = by_kind(render(mailer__lanes="{high}"), "ConfigMap")["r-offload-autoscaler"]
    monkeypatch.setenv("OFFLOAD_MANAGEMENT_URL", "http://u:p@rabbitmq:15672")
    specs = {s.name: s for s in parse_config(yaml.safe_load(config["data"]["autoscaler.yaml"]))}
    assert set(specs) == {"mailer", "stats-runner"}
    mailer = specs["mailer"]
    assert (mailer.target.kind, mailer.target.name) == ("Deployment", "r-offload-mailer")
    assert (mailer.min_replicas, mailer.max_replicas, mailer.cooldown_period) == (1, 4, 120)
    [trigger] = mailer.triggers
    assert (trigger.protocol, trigger.mode, trigger.operation, trigger.value) == (
        "http",
        "QueueLength",
        "sum",
        20,
    )
    assert trigger.host == "http://u:p@rabbitmq:15672"
    assert re.match(trigger.queue_regex, "mailer.signups.high") and not re.match(
        trigger.queue_regex, "mailer.signups.low"
    )


def test_keda_objects_carry_the_same_settings_and_no_credentials():
    docs = render("keda-values.yaml")
    objects = by_kind(docs, "ScaledObject")
    mailer = objects["r-offload-mailer"]["spec"]
    assert mailer["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "r-offload-mailer",
    }
    assert (mailer["minReplicaCount"], mailer["maxReplicaCount"], mailer["cooldownPeriod"]) == (0, 10, 300)
    assert (
        mailer["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"][
            "stabilizationWindowSeconds"
        ]
        == 60
    )
    [trigger] = mailer["triggers"]
    assert trigger["metadata"] | {} == {
        "protocol": "http",
        "mode": "QueueLength",
        "useRegex": "true",
        "queueName": r"^mailer\.signups\.(high|low)$",
        "operation": "sum",
        "value": "50",
        "activationValue": "5",
    }
    [auth] = by_kind(docs, "TriggerAuthentication").values()
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "host", "name": "r-offload-rabbitmq", "key": "monitoring-url"}
    ]
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    assert "r-offload-autoscaler" not in by_kind(docs, "Deployment")


def test_no_password_is_written_into_a_manifest_outside_generated_secrets():
    docs = render("external-services-values.yaml")
    assert not by_kind(docs, "Secret")  # everything comes from existing Secrets
    text = yaml.safe_dump_all(docs)
    assert "guest" not in text and "password:" not in text
    docs = render()
    secrets = by_kind(docs, "Secret")
    assert set(secrets) == {
        "r-offload-rabbitmq",
        "r-offload-redis",
        "r-offload-rabbitmq-erlang-cookie",
        "r-offload-web",
    }
    password = secrets["r-offload-rabbitmq"]["stringData"]["password"]
    assert len(password) == 32 and password.isalnum()
    cookie = secrets["r-offload-rabbitmq-erlang-cookie"]["stringData"]["cookie"]
    assert len(cookie) == 48 and cookie.isalnum()
    others = yaml.safe_dump_all([d for d in docs if d["kind"] != "Secret"])
    assert password not in others and cookie not in others
    # Generated once and kept: not deleted by `helm uninstall`, since the volume keeps the data.
    assert secrets["r-offload-rabbitmq"]["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def web_env(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    [container] = pod_specs(docs)["r-offload-web"]["containers"]
    return {e["name"]: e for e in container["env"]}


def test_the_web_counts_in_redis_as_its_own_user_and_imports_only_with_a_token():
    docs = render()
    env = web_env(docs)
    assert env["OFFLOAD_WEB_SIGNUP_LIMIT_PER_CLIENT"]["value"] == "10/minute;60/hour"
    assert env["OFFLOAD_WEB_TRUSTED_PROXIES"]["value"] == "0"
    assert env["REDIS_WEB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "r-offload-redis",
        "key": "web-password",
    }
    assert (
        env["OFFLOAD_WEB_RATE_LIMIT_STORAGE"]["value"]
        == "redis://web:$(REDIS_WEB_PASSWORD)@r-offload-redis:6379/0"
    )
    assert "REDIS_PASSWORD" not in env  # the stores' user stays out of the internet-facing pod
    [redis] = pod_specs(docs)["r-offload-redis"]["containers"]
    user = redis["args"][redis["args"].index("--user") + 1 : redis["args"].index("--maxmemory")]
    assert user[:3] == ["web", "on", ">$(REDIS_WEB_PASSWORD)"] and "~offload:web:*" in user
    assert "-@dangerous" in user and "~*" not in user and "allkeys" not in user
    # A ceiling below the container's limit, and nothing evicted past it.
    args = redis["args"]
    assert args[args.index("--maxmemory") + 1] == "192mb"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    secret = by_kind(docs, "Secret")["r-offload-redis"]["stringData"]
    assert len(secret["web-password"]) == 32 and secret["web-password"] != secret["password"]
    # The form's signing key, generated and the same for every replica.
    key = by_kind(docs, "Secret")["r-offload-web"]["stringData"]["secret-key"]
    assert len(key) == 48 and key.isalnum()
    assert env["OFFLOAD_WEB_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "r-offload-web",
        "key": "secret-key",
    }
    # The batch import is off unless enabled, and then takes its token from a Secret.
    assert "OFFLOAD_WEB_BATCH_TOKEN" not in env and "r-offload-batch-import" not in by_kind(docs, "Secret")
    enabled = render(web__batchImport__enabled="true")
    token = by_kind(enabled, "Secret")["r-offload-batch-import"]["stringData"]["token"]
    assert len(token) == 48 and token.isalnum()
    ref = web_env(enabled)["OFFLOAD_WEB_BATCH_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "r-offload-batch-import", "key": "token"}
    own = render(web__batchImport__enabled="true", web__batchImport__existingSecret="import")
    assert "r-offload-batch-import" not in by_kind(own, "Secret")
    assert web_env(own)["OFFLOAD_WEB_BATCH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "import"
    # An external Redis: the web's own URL if the Secret has one, else per-worker counting.
    external = web_env(render("external-services-values.yaml"))["OFFLOAD_WEB_RATE_LIMIT_STORAGE"]
    assert external["valueFrom"]["secretKeyRef"]["key"] == "web-redis-url"
    assert external["valueFrom"]["secretKeyRef"]["optional"] is True


def test_stats_counts_in_a_redis_of_its_own_with_its_own_memory_ceiling():
    """Counting can never fill the memory the mailer's claims need: two Redis, each with a
    maxmemory; the stats pods point at theirs. External: the Secret's statsUrlKey, else the
    one Redis (the control: nothing separates them then)."""

    def stats_urls(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            e
            for name in ("r-offload-stats-api", "r-offload-stats-runner")
            for c in pod_specs(docs)[name]["containers"]
            for e in c["env"]
            if e["name"] == "OFFLOAD_STATS_STORE_URL"
        ]

    docs = render(redis__stats__maxmemory="32mb")
    specs = pod_specs(docs)
    ceilings = {}
    for name in ("r-offload-redis", "r-offload-stats-redis"):
        [container] = specs[name]["containers"]
        ceilings[name] = container["args"][container["args"].index("--maxmemory") + 1]
        assert container["args"][container["args"].index("--maxmemory-policy") + 1] == "noeviction"
    assert ceilings == {"r-offload-redis": "192mb", "r-offload-stats-redis": "32mb"}
    # Each as its own user (tests/chart/test_redis_users.py checks their rights).
    assert {e["value"] for e in stats_urls(docs)} == {
        "redis://stats-runner:$(REDIS_STATS_RUNNER_PASSWORD)@r-offload-stats-redis:6379/0",
        "redis://stats-api:$(REDIS_STATS_API_PASSWORD)@r-offload-stats-redis:6379/0",
    }
    [stats_redis] = specs["r-offload-stats-redis"]["containers"]
    users = [stats_redis["args"][i + 1] for i, a in enumerate(stats_redis["args"]) if a == "--user"]
    assert users == ["stats-runner", "stats-api"]  # no web user there
    external = stats_urls(render("external-services-values.yaml", redis__external__statsUrlKey="stats-url"))
    assert {e["valueFrom"]["secretKeyRef"]["key"] for e in external} == {"stats-url"}
    shared = stats_urls(render("external-services-values.yaml"))
    assert {e["valueFrom"]["secretKeyRef"]["key"] for e in shared} == {"redis-url"}


def test_the_broker_definitions_expire_parked_messages_with_the_topologys_policy():
    from offload_core.topology import parked_retention_policy

    def policies(**sets: str) -> list[dict[str, Any]]:
        secret = by_kind(render(**sets), "Secret")["r-offload-rabbitmq"]["stringData"]
        return json.loads(secret["definitions.json"])["policies"]

    tag = yaml.safe_load((CHART / "values.yaml").read_text())["rabbitmq"]["image"]["tag"]
    major = int(tag.split(".")[0])
    assert policies() == [{"vhost": "/", **parked_retention_policy(14, rabbitmq_major=major)}]
    three = parked_retention_policy(3, rabbitmq_major=major)
    assert policies(rabbitmq__parkedRetentionDays="3") == [{"vhost": "/", **three}]
    # The image's major version decides the delivery limit: 4.x's default of 20 would drop a
    # parked message at its 21st browse; 3.x refuses -1.
    four = parked_retention_policy(14, rabbitmq_major=4)
    assert policies(rabbitmq__image__tag="4.0.5-management") == [{"vhost": "/", **four}]
    assert policies(rabbitmq__image__tag="3.13.7") == [
        {"vhost": "/", **parked_retention_policy(14, rabbitmq_major=3)}
    ]
    # A tag without a version (the kind provider's "dev", built from the 4.0.5 tree): 4.
    assert policies(rabbitmq__image__tag="dev") == [{"vhost": "/", **four}]


def test_network_policies_are_on_by_default_and_dns_follows_the_dns_ports():
    assert "r-offload-default-deny" in by_kind(render(), "NetworkPolicy")
    deny = by_kind(render(networkPolicy__dnsPorts="{53,5353}"), "NetworkPolicy")["r-offload-default-deny"]
    ports = deny["spec"]["egress"][0]["ports"]
    assert ports == [{"protocol": p, "port": n} for n in (53, 5353) for p in ("UDP", "TCP")]
    assert not by_kind(render(networkPolicy__enabled="false"), "NetworkPolicy")


def test_operators_from_opens_every_port_of_every_pod_to_those_peers_only():
    """networkPolicy.operatorsFrom adds one rule without ports to each policy that admits
    traffic, and nothing by default (the control: no rule has those peers)."""
    peers = [{"ipBlock": {"cidr": "172.18.0.0/16"}}]
    args = ("network-policies-values.yaml",)
    opened = by_kind(render(*args, **{"networkPolicy__operatorsFrom[0]__ipBlock__cidr": "172.18.0.0/16"}),
                     "NetworkPolicy")  # fmt: skip
    default = by_kind(render(*args), "NetworkPolicy")
    admitting = {
        name
        for name, p in opened.items()
        if "Ingress" in p["spec"]["policyTypes"] and name != "r-offload-default-deny"
    }
    assert admitting >= {
        "r-offload-web",
        "r-offload-stats-api",
        "r-offload-rabbitmq",
        "r-offload-redis",
        "r-offload-mailpit",
    }
    for name in admitting:
        rules = opened[name]["spec"]["ingress"]
        assert rules[-1] == {"from": peers}, name
        assert rules[:-1] == default[name]["spec"]["ingress"], name
    assert all({"from": peers} not in p["spec"].get("ingress", []) for p in default.values())


def test_tracing_sets_the_otel_variables_and_opens_the_collector_port_only_when_on():
    """tracing.otlpEndpoint reaches web, mailer and stats as OTEL_* variables and opens
    egress to the collector's port; unset (the control), neither exists."""
    docs = render(tracing__otlpEndpoint="http://jaeger.tracing:4318", tracing__samplerArg="0.5")
    traced = {"r-offload-web", "r-offload-mailer", "r-offload-stats-runner"}
    for name, spec in pod_specs(docs).items():
        env = {e["name"]: e.get("value") for c in spec["containers"] for e in c.get("env", [])}
        if name in traced:
            assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger.tracing:4318", name
            assert env["OTEL_TRACES_SAMPLER"] == "parentbased_always_on"
            assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.5"
    collector = {"ports": [{"protocol": "TCP", "port": 4318}]}
    policies = by_kind(docs, "NetworkPolicy")
    assert {name for name, p in policies.items() if collector in p["spec"].get("egress", [])} == traced
    untraced = render()
    assert not any("OTEL_" in str(spec) for spec in pod_specs(untraced).values())
    assert not any(
        collector in p["spec"].get("egress", []) for p in by_kind(untraced, "NetworkPolicy").values()
    )


def test_network_policies_allow_only_the_designed_paths():
    docs = render("network-policies-values.yaml")
    policies = by_kind(docs, "NetworkPolicy")
    deny = policies["r-offload-default-deny"]["spec"]
    assert deny["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "offload",
        "app.kubernetes.io/instance": "r",
    }
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny
    assert deny["egress"] == [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]

    def egress_peers(name: str) -> list[tuple[str, int]]:
        found = []
        for rule in policies[name]["spec"]["egress"]:
            peers = [
                p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in rule.get("to", [])
            ]
            found += [(peer, port["port"]) for peer in (peers or ["*"]) for port in rule["ports"]]
        return sorted(found)

    assert egress_peers("r-offload-web") == [("rabbitmq", 5672), ("redis", 6379)]
    # Stats counts in a Redis of its own: it cannot fill the sent-store's, nor reach it.
    assert egress_peers("r-offload-stats-api") == [("stats-redis", 6379)]
    assert egress_peers("r-offload-stats-runner") == [("rabbitmq", 5672), ("stats-redis", 6379)]
    assert egress_peers("r-offload-mailer") == [("mailpit", 1025), ("rabbitmq", 5672), ("redis", 6379)]
    # The autoscaler reads depths through the management API and has no AMQP user.
    assert egress_peers("r-offload-autoscaler") == [("*", 443), ("*", 6443), ("rabbitmq", 15672)]
    # The topology Job, the one pod with the broker administrator's password, reaches AMQP only.
    assert egress_peers("r-offload-topology") == [("rabbitmq", 5672)]
    broker_from = policies["r-offload-rabbitmq"]["spec"]["ingress"]
    amqp_clients = sorted(
        p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in broker_from[0]["from"]
    )
    assert amqp_clients == ["mailer", "stats-runner", "topology", "web"]
    for store, clients in (("redis", ["mailer", "web"]), ("stats-redis", ["stats-api", "stats-runner"])):
        [rule, *_] = policies[f"r-offload-{store}"]["spec"]["ingress"]
        peers = sorted(p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in rule["from"])
        assert peers == clients, store
    # Every pod the chart runs is covered by the deny-all policy's selector.
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            labels = d["spec"]["template"]["metadata"]["labels"]
            assert deny["podSelector"]["matchLabels"].items() <= labels.items(), d["metadata"]["name"]


def test_management_urls_resolve_from_other_namespaces():
    # KEDA's operator runs in its own namespace: a bare Service name would not resolve there.
    [secret] = [
        d
        for d in render("keda-values.yaml")
        if d["kind"] == "Secret" and "management-url" in d.get("stringData", {})
    ]
    for key in ("management-url", "monitoring-url"):
        assert urlsplit(secret["stringData"][key]).hostname == f"r-offload-rabbitmq.{NAMESPACE}.svc"


def test_with_keda_only_kedas_operator_reads_the_management_api():
    docs = render("network-policies-values.yaml", autoscaling__engine="keda")
    broker_from = by_kind(docs, "NetworkPolicy")["r-offload-rabbitmq"]["spec"]["ingress"]
    [management] = [rule for rule in broker_from if rule["ports"] == [{"protocol": "TCP", "port": 15672}]]
    assert management["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
            "podSelector": {"matchLabels": {"app": "keda-operator"}},
        }
    ]
    # Negative control: with our autoscaler, the peer is the autoscaler, not KEDA.
    own = by_kind(render("network-policies-values.yaml"), "NetworkPolicy")["r-offload-rabbitmq"]["spec"]
    [own_management] = [
        rule for rule in own["ingress"] if rule["ports"] == [{"protocol": "TCP", "port": 15672}]
    ]
    assert (
        own_management["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "autoscaler"
    )


def test_monitoring_objects_wrap_the_checked_files():
    docs = render("monitoring-values.yaml")
    [rule] = by_kind(docs, "PrometheusRule").values()
    assert (
        rule["spec"]["groups"]
        == yaml.safe_load((CHART / "files" / "offload-rules.yaml").read_text())["groups"]
    )
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    dashboards = [
        c for c in by_kind(docs, "ConfigMap").values() if c["metadata"]["labels"].get("grafana_dashboard")
    ]
    [dashboard] = dashboards
    assert json.loads(dashboard["data"]["offload-dashboard.json"]) == json.loads(
        (CHART / "files" / "offload-dashboard.json").read_text()
    )
    [monitor] = by_kind(docs, "PodMonitor").values()
    ports = {e["port"]: e for e in monitor["spec"]["podMetricsEndpoints"]}
    assert set(ports) == {"metrics", "prometheus"}
    assert ports["prometheus"]["path"] == "/metrics/detailed"
    # Every metrics port named in the PodMonitor exists on the pods it is meant for.
    named = {p["name"] for s in pod_specs(docs).values() for c in s["containers"] for p in c.get("ports", [])}
    assert set(ports) <= named
    # The routed port (http) serves no probe: /healthz and /readyz are on the status port.
    for name, spec in pod_specs(docs).items():
        for container in spec["containers"]:
            probes = [container.get(k) for k in ("livenessProbe", "readinessProbe", "startupProbe")]
            for probe in filter(None, probes):
                if "httpGet" in probe and name.startswith("offload-"):
                    assert probe["httpGet"]["port"] != "http", (name, probe)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"web__replicas": "3"}, "additional properties 'replicas' not allowed"),
        ({"autoscaling__engine": "hpa"}, "/autoscaling/engine"),
        ({"rabbitmq__builtin": "false"}, "/rabbitmq/external/existingSecret"),
        ({"redis__builtin": "false"}, "/redis/external/existingSecret"),
        ({"mailer__smtp__username": "x"}, "/mailer/smtp/existingSecret"),
        (
            {
                "mailer__smtp__username": "x",
                "mailer__smtp__existingSecret": "s",
                "mailer__smtp__security": "none",
            },
            "/mailer/smtp/security",
        ),
        ({"mailer__lanes": "{urgent}"}, "/mailer/lanes/0"),
        ({"mailer__autoscaling__maxReplicaCount": "0"}, "/mailer/autoscaling/maxReplicaCount"),
        ({"rabbitmq__memoryHighWatermark": "2"}, "/rabbitmq/memoryHighWatermark"),
        ({"autoscaler__replicas": "2"}, "/autoscaler/replicas"),
        ({"rabbitmq__replicas": "2"}, "use an odd number of broker nodes"),
        ({"rabbitmq__replicas": "0"}, "/rabbitmq/replicas"),
        ({"web__rateLimits__perClient": "ten a minute"}, "/web/rateLimits/perClient"),
        ({"web__batchImport__enabled": "yes"}, "/web/batchImport/enabled"),
    ],
)
def test_values_schema_refuses_what_cannot_work(sets, message):
    args = ["template", "r", str(CHART)]
    for key, value in sets.items():
        args += ["--set", f"{key.replace('__', '.')}={value}"]
    result = helm(*args)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_a_broker_cluster_finds_its_peers_with_the_least_rights_and_loses_one_node_at_a_time():
    single = render()
    assert by_kind(single, "StatefulSet")["r-offload-rabbitmq"]["spec"]["replicas"] == 1
    assert "r-offload-rabbitmq" not in by_kind(single, "Role") | by_kind(single, "PodDisruptionBudget")
    assert pod_specs(single)["r-offload-rabbitmq"]["automountServiceAccountToken"] is False

    docs = render("broker-cluster-values.yaml")
    broker = by_kind(docs, "StatefulSet")["r-offload-rabbitmq"]["spec"]
    assert broker["replicas"] == 3 and broker["podManagementPolicy"] == "Parallel"
    pod = broker["template"]["spec"]
    assert pod["serviceAccountName"] == "r-offload-rabbitmq" and pod["automountServiceAccountToken"] is True
    assert pod["topologySpreadConstraints"][0]["whenUnsatisfiable"] == "DoNotSchedule"
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RABBITMQ_NODENAME"] == (
        "rabbit@$(POD_NAME).r-offload-rabbitmq-headless.$(POD_NAMESPACE).svc.cluster.local"
    )
    assert env["OFFLOAD_BROKER_NODES"] == "3"
    assert container["lifecycle"]["preStop"]["exec"]["command"][-1].endswith("pre-stop.sh")
    [role] = by_kind(docs, "Role")["r-offload-rabbitmq"]["rules"]
    assert role == {
        "apiGroups": [""],
        "resources": ["endpoints"],
        "resourceNames": ["r-offload-rabbitmq-headless"],
        "verbs": ["get"],
    }
    assert by_kind(docs, "PodDisruptionBudget")["r-offload-rabbitmq"]["spec"]["maxUnavailable"] == 1
    config = by_kind(docs, "ConfigMap")["r-offload-rabbitmq"]["data"]
    assert "rabbitmq_peer_discovery_k8s" in config["enabled_plugins"]
    assert "cluster_formation.k8s.service_name = r-offload-rabbitmq-headless" in config["offload.conf"]
    # Node to node, and to the API server for discovery: the only new paths.
    policy = by_kind(docs, "NetworkPolicy")["r-offload-rabbitmq"]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    peers = policy["ingress"][0]
    assert peers["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "rabbitmq"
    assert [(p["port"], p.get("endPort")) for p in peers["ports"]] == [
        (4369, None),
        (25672, None),
        (35672, 35682),
    ]
    assert policy["egress"][0]["ports"] == peers["ports"]
    assert sorted(p["port"] for p in policy["egress"][1]["ports"]) == [443, 6443]


@pytest.mark.parametrize(
    "values", ["network-policies-values.yaml", "external-services-values.yaml", "broker-cluster-values.yaml"]
)
def test_checkov_finds_nothing_beyond_the_documented_exceptions(values, tmp_path):
    (tmp_path / "manifests.yaml").write_text(yaml.safe_dump_all(render(values)))
    result = subprocess.run(
        [
            checkov(),
            "-d",
            str(tmp_path),
            "--framework",
            "kubernetes",
            "--quiet",
            "-o",
            "json",
            "--skip-check",
            ",".join(CHECKOV_EXCEPTIONS),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(result.stdout)
    failed = report["results"]["failed_checks"] if report else []
    unexpected = [
        f"{f['check_id']} {f['resource']}: {f['check_name']}"
        for f in failed
        if (f["check_id"], f["resource"]) not in CHECKOV_OBJECT_EXCEPTIONS
    ]
    assert not unexpected, "\n".join(unexpected)
    assert report["summary"]["passed"] > 100


def test_the_rabbitmq_cluster_operator_example_follows_the_operators_crd(tmp_path):
    """deploy/rabbitmq-cluster-operator: a RabbitmqCluster the operator accepts (its CRD's
    schema, strict), for the external-broker path the chart renders above."""
    example = ROOT / "deploy" / "rabbitmq-cluster-operator" / "rabbitmqcluster.yaml"

    def kubeconform(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tool("kubeconform"), "-strict", "-summary", *kubeconform_schema_locations(), str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    valid = kubeconform(example)
    assert valid.returncode == 0 and "Valid: 1" in valid.stdout, valid.stdout + valid.stderr
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text(example.read_text().replace("  replicas: 3", "  replica: 3"))
    assert kubeconform(misspelt).returncode != 0
    [cluster] = yaml.safe_load_all(example.read_text())
    assert cluster["spec"]["replicas"] == 3


def test_the_broker_restarts_when_what_its_nodes_import_at_boot_changes():
    """Users' rights and the parking policy reach a running broker only through its boot-time
    definitions import: a change of either changes the pod template (a rolling restart); a
    change elsewhere (the control) does not."""

    def stamp(**sets: str) -> str:
        [broker] = [
            d
            for d in render(**sets)
            if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "r-offload-rabbitmq"
        ]
        return broker["spec"]["template"]["metadata"]["annotations"]["checksum/broker-definitions"]

    default = stamp()
    assert stamp(rabbitmq__parkedRetentionDays="7") != default
    assert stamp(web__replicaCount="3") == default
