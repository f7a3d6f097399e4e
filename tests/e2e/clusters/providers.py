"""The clusters the e2e suite runs against, one class per provider (OFFLOAD_E2E_PROVIDER).

- `kind` (the default): a kind cluster from k8s/kind-cluster.yaml on the node image built
  here (docs/kind.md), running every image built by `make images` (RabbitMQ, Redis and a
  mail sink from Debian among them). Services are reached at their cluster IPs, routed from
  this host through the nodes.
- `existing`: whatever cluster KUBECONFIG points at; images must be reachable by it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from offload_testkit.k8s_tools import tool
from offload_testkit.kube import KUBE_BIN, ClusterError, service_account_kubeconfig

# The checkout these providers live in: they build its images and install its chart.
ROOT = Path(__file__).resolve().parents[3]


# What `make images` builds, all of which the kind nodes run.
IMAGES = ("web", "mailer", "stats", "autoscaler", "rabbitmq", "redis", "mailsink")
# PersistentVolumes of this class, made by the kind provider, stand in for a provisioner
# (k8s/local-values.yaml): the release's three broker nodes, the KEDA scenario's one, spares.
STORAGE_CLASS = "offload-local"
VOLUMES = 6
# The label of the kind worker that holds those volumes (k8s/kind-cluster.yaml).
STATEFUL_NODE_LABEL = {"offload-stateful": "true"}
# kind's default Service range (networking.serviceSubnet), routed from this host.
KIND_SERVICE_SUBNET = "10.96.0.0/16"
# The container of scripts/local-registry.sh.
LOCAL_REGISTRY = "offload-registry"
# Where the e2e suite installs the chart.
E2E_NAMESPACE = os.environ.get("OFFLOAD_E2E_NAMESPACE", "offload-e2e")


def run(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float = 600, check: bool = True
) -> str:
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
    if check and result.returncode != 0:
        raise ClusterError(
            f"{' '.join(args[:3])} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result.stdout


@dataclass
class Cluster:
    """What a scenario needs from any provider."""

    provider: str
    kubeconfig: Path
    values_files: list[Path] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def helm(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        return run([tool("helm"), *args], env=self.env(), timeout=timeout, check=check)

    @contextlib.contextmanager
    def service_url(self, namespace: str, target: str, port: int) -> Iterator[str]:
        """An http:// URL reaching `target` (svc/, deploy/ or pod/NAME) on `port` from this machine."""
        with port_forward(self, namespace, target, port) as url:
            yield url

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path) -> Path:
        """This cluster's kubeconfig, authenticated as a ServiceAccount (a TokenRequest token)."""
        return service_account_kubeconfig(self.kubeconfig, namespace, name, path)

    def load_images(self, images: list[str]) -> None:
        """Make images of this machine's Docker engine available to the cluster's nodes."""
        del images  # an existing cluster pulls what its values name

    def close(self) -> None:
        pass


class KindCluster(Cluster):
    """A kind cluster from k8s/kind-cluster.yaml on the node image built here
    (scripts/kind-node-image.sh: one control plane, two workers, our pod network and
    NetworkPolicy agent), every image of `make images` loaded into its nodes.

    kind runs from KUBE_BIN, with the kind-bin `docker` shim first on its PATH: kind starts
    nodes with --privileged, which Docker cannot grant where its own capabilities are cut
    short. Cluster IPs and pod IPs are routed from this host through the nodes, so scenarios
    reach Services without port-forwards, through pod restarts.
    """

    def __init__(self, workdir: Path, name: str = "") -> None:
        self.workdir = workdir
        self.name = name or os.environ.get("OFFLOAD_E2E_KIND_NAME", "offload-e2e")
        self.tag = os.environ.get("IMAGE_TAG", "dev")
        self.routes: list[str] = []
        self.operators_from: list[dict] = []  # this host's peers in NetworkPolicies (_write_values)
        self.generated_values = workdir / "kind-generated-values.yaml"
        super().__init__(
            "kind",
            workdir / "kind.kubeconfig",
            values_files=[ROOT / "k8s" / "local-values.yaml", self.generated_values],
        )

    def _write_values(self) -> None:
        """The images of `make images`; the stateful parts on the worker that
        holds the broker's volumes (k8s/kind-cluster.yaml labels it); and this host, which
        reaches pods from kind's Docker network, let through the release's NetworkPolicies
        (operatorsFrom) to read the stats API, the broker's management API and metrics."""
        values: dict = {
            part: {"image": {"tag": self.tag}, "nodeSelector": STATEFUL_NODE_LABEL}
            for part in ("rabbitmq", "redis", "mailpit")
        }
        values["image"] = {"tag": self.tag}
        subnets = run(
            ["docker", "network", "inspect", "kind", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"]
        )
        ipv4 = [s for s in subnets.split() if ":" not in s]
        self.operators_from = [{"ipBlock": {"cidr": cidr}} for cidr in ipv4]
        values["networkPolicy"] = {"operatorsFrom": self.operators_from}
        self.generated_values.write_text(yaml.safe_dump(values))

    def kind_env(self) -> dict[str, str]:
        shim = Path(__file__).with_name("kind-bin")
        return {**os.environ, "PATH": f"{shim}:{KUBE_BIN}:{os.environ.get('PATH', '')}"}

    def kind(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        return run([str(KUBE_BIN / "kind"), *args], env=self.kind_env(), timeout=timeout, check=check)

    def start(self) -> None:
        run([str(ROOT / "scripts" / "kind-node-image.sh")], timeout=3600)
        run(["make", "-C", str(ROOT), "images", f"IMAGE_TAG={self.tag}"], timeout=1800)
        self.kind("delete", "cluster", "--name", self.name, check=False)  # a run that did not close
        config = self.workdir / "kind-cluster.yaml"
        config.write_text(yaml.safe_dump(kind_config_without_host_ports(ROOT / "k8s" / "kind-cluster.yaml")))
        self.kind(
            "create", "cluster", "--name", self.name, "--config", str(config),
            "--kubeconfig", str(self.kubeconfig), "--wait", "180s", timeout=900,
        )  # fmt: skip
        self._route_to_the_cluster()
        self._write_values()
        self.load_images([f"offload-{image}:{self.tag}" for image in IMAGES])
        self._create_volumes()

    def _create_volumes(self) -> None:
        """Static local volumes on the stateful worker, owned by the images' UID: kind's
        default provisioner would hand the broker root-owned directories it cannot write."""
        from kubernetes import client

        from offload_testkit.kube import api_client

        core = client.CoreV1Api(api_client(self.kubeconfig))
        selector = ",".join(f"{k}={v}" for k, v in STATEFUL_NODE_LABEL.items())
        [node] = [str(n.metadata.name) for n in core.list_node(label_selector=selector).items]
        on_node = client.V1NodeSelectorRequirement(key="kubernetes.io/hostname", operator="In", values=[node])
        for i in range(VOLUMES):
            path = f"/var/local-volumes/pv-{i}"
            run(["docker", "exec", node, "sh", "-c", f"mkdir -p {path} && chown 999:999 {path}"])
            core.create_persistent_volume(
                client.V1PersistentVolume(
                    metadata=client.V1ObjectMeta(name=f"{STORAGE_CLASS}-{i}"),
                    spec=client.V1PersistentVolumeSpec(
                        capacity={"storage": "1Gi"},
                        access_modes=["ReadWriteOnce"],
                        storage_class_name=STORAGE_CLASS,
                        persistent_volume_reclaim_policy="Retain",
                        local=client.V1LocalVolumeSource(path=path),
                        node_affinity=client.V1VolumeNodeAffinity(
                            required=client.V1NodeSelector(
                                node_selector_terms=[client.V1NodeSelectorTerm(match_expressions=[on_node])]
                            )
                        ),
                    ),
                )
            )

    def _route_to_the_cluster(self) -> None:
        """This host reaches pod IPs through their nodes and cluster IPs through the control
        plane's kube-proxy (which masquerades traffic from outside the pod network, so replies
        come back the same way)."""
        from kubernetes import client

        from offload_testkit.kube import api_client

        nodes = client.CoreV1Api(api_client(self.kubeconfig)).list_node().items
        control_plane = ""
        for node in nodes:
            address = next(a.address for a in node.status.addresses if a.type == "InternalIP")
            self._add_route(node.spec.pod_cidr, address)
            if "node-role.kubernetes.io/control-plane" in (node.metadata.labels or {}):
                control_plane = address
        self._add_route(KIND_SERVICE_SUBNET, control_plane)

    def _add_route(self, destination: str, gateway: str) -> None:
        run(["ip", "route", "replace", destination, "via", gateway])
        self.routes.append(destination)

    def load_images(self, images: list[str]) -> None:
        self.kind("load", "docker-image", "--name", self.name, *images, timeout=1200)

    def use_local_registry(self) -> str:
        """Start the local registry (scripts/local-registry.sh: 127.0.0.1:PORT on this host,
        joined to kind's network) and point every node's containerd at it: an image named
        127.0.0.1:PORT/... is pulled over plain HTTP from the registry's address on that
        network. Returns the registry's host:port as image names spell it."""
        run([str(ROOT / "scripts" / "local-registry.sh")], timeout=600)
        port = os.environ.get("OFFLOAD_REGISTRY_PORT", "5001")
        address = run(
            [
                "docker",
                "inspect",
                "-f",
                '{{(index .NetworkSettings.Networks "kind").IPAddress}}',
                LOCAL_REGISTRY,
            ]
        ).strip()
        hosts = (
            f'server = "http://127.0.0.1:{port}"\n\n'
            f'[host."http://{address}:5000"]\n  capabilities = ["pull", "resolve"]\n'
        )
        directory = f"/etc/containerd/certs.d/127.0.0.1:{port}"
        for node in self.kind("get", "nodes", "--name", self.name).split():
            run(["docker", "exec", node, "mkdir", "-p", directory])
            subprocess.run(
                ["docker", "exec", "-i", node, "cp", "/dev/stdin", f"{directory}/hosts.toml"],
                input=hosts, text=True, check=True, capture_output=True,
            )  # fmt: skip
        return f"127.0.0.1:{port}"

    def node_images(self) -> set[str]:
        """Every image reference in the nodes' containerd (the Kubernetes namespace)."""
        names: set[str] = set()
        for node in self.kind("get", "nodes", "--name", self.name).split():
            names.update(run(["docker", "exec", node, "ctr", "-n", "k8s.io", "images", "ls", "-q"]).split())
        return names

    @contextlib.contextmanager
    def service_url(self, namespace: str, target: str, port: int) -> Iterator[str]:
        yield f"http://{routed_address(self.kubeconfig, namespace, target)}:{port}"

    def close(self) -> None:
        for destination in self.routes:
            run(["ip", "route", "del", destination], check=False)
        if os.environ.get("OFFLOAD_E2E_KEEP_CLUSTER") != "1":
            self.kind("delete", "cluster", "--name", self.name, check=False)


def kind_config_without_host_ports(path: Path) -> dict:
    """The cluster config with no host port mappings, so the suite's cluster can run beside a
    development cluster from the same file (both would claim 127.0.0.1:8080)."""
    config = yaml.safe_load(path.read_text())
    for node in config["nodes"]:
        node.pop("extraPortMappings", None)
    return config


class ExistingCluster(Cluster):
    """The cluster in KUBECONFIG. Extra helm values (images, registry) from OFFLOAD_E2E_VALUES."""

    def __init__(self, workdir: Path) -> None:
        kubeconfig = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
        values = [Path(p) for p in os.environ.get("OFFLOAD_E2E_VALUES", "").split(",") if p]
        super().__init__("existing", Path(kubeconfig), values_files=values)
        del workdir

    def start(self) -> None:
        if not self.kubeconfig.exists():
            raise ClusterError(f"no kubeconfig at {self.kubeconfig}")


PROVIDERS: dict[str, type[KindCluster] | type[ExistingCluster]] = {
    "kind": KindCluster,
    "existing": ExistingCluster,
}


def routed_address(kubeconfig: Path, namespace: str, target: str) -> str:
    """The IP of `target` (svc/, deploy/ or pod/NAME) where this host routes to the cluster:
    a Service's cluster IP, a pod's IP, or that of a deployment's ready pod."""
    from kubernetes import client

    from offload_testkit.kube import api_client

    kind, name = target.split("/", 1)
    api = api_client(kubeconfig)
    if kind == "svc":
        return str(client.CoreV1Api(api).read_namespaced_service(name, namespace).spec.cluster_ip)
    if kind == "pod":
        return str(client.CoreV1Api(api).read_namespaced_pod(name, namespace).status.pod_ip)
    if kind != "deploy":
        raise ValueError(f"target must be svc/NAME, deploy/NAME or pod/NAME, not {target!r}")
    selector = client.AppsV1Api(api).read_namespaced_deployment(name, namespace).spec.selector.match_labels
    pods = client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=",".join(f"{k}={v}" for k, v in selector.items())
    )
    # Ready and not on its way out: a scaled-down pod stays Running while it drains.
    ready = [
        p.status.pod_ip
        for p in pods.items
        if p.metadata.deletion_timestamp is None
        and p.status.pod_ip
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]
    if not ready:
        raise ClusterError(f"no ready pod of {target}")
    return str(ready[0])


@contextlib.contextmanager
def port_forward(cluster: Cluster, namespace: str, target: str, port: int) -> Iterator[str]:
    """`kubectl port-forward` to `target` (e.g. svc/offload-web) on a free local port; yields its URL."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise ClusterError("kubectl is needed to reach services inside the cluster")
    process = subprocess.Popen(
        [kubectl, "port-forward", "-n", namespace, target, f"127.0.0.1:0:{port}"],
        env=cluster.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "Forwarding from 127.0.0.1:41234 -> 8000"
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        if match is None:
            raise ClusterError(f"port-forward to {target} failed: {line}{process.stdout.read(2000)}")
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        process.terminate()
        process.wait(10)
