"""One Kubernetes node on this host for a LocalControlPlane.

containerd, runc, the CNI plugins and iptables come from Debian; the kubelet, kube-proxy,
the pause binary and CoreDNS are built by scripts/kube-binaries.sh. Pods live on the bridge
offload0 (POD_SUBNET) with this host as their gateway; kube-proxy (iptables mode) makes
Service IPs work for pods and for this host; CoreDNS answers for cluster.local at
DNS_SERVICE_IP; kube-network-policies enforces NetworkPolicies (a verdict on each new
connection to or from a pod, see network_policies). Images come from the Docker engine
(`import_images`) or are built here.

Runs as root, and changes the host only in ways it undoes on close: the bridge, the CNI
firewall chains, kube-proxy's chains and the policy agent's chains.
"""

from __future__ import annotations

import base64
import json
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from offload_testkit.kube import (
    BRIDGE,
    CLUSTER_DOMAIN,
    COREDNS_IMAGE,
    DNS_SERVICE_IP,
    KUBE_BIN,
    PAUSE_IMAGE,
    POD_GATEWAY,
    POD_SUBNET,
    SERVICE_SUBNET,
    ClusterError,
    LocalControlPlane,
    _Daemons,
    api_client,
    kubeconfig_document,
)
from offload_testkit.processes import free_port
from tests.e2e.clusters import network_policies
from tests.e2e.clusters.node_images import binary_image_archive, import_docker_images, import_image_archive

# CoreDNS runs unprivileged, so it listens above 1024; its Service answers on 53. A
# NetworkPolicy sees the port after kube-proxy's DNAT: this one.
COREDNS_PORT = 1053


class LocalNode(_Daemons):
    """containerd + kubelet + kube-proxy registered with a LocalControlPlane, and CoreDNS.

    containerd's CRI must not give the sandbox a lower oom_score_adj than its own
    (restrict_oom_score_adj): inside a container, as on these machines, runc otherwise fails
    every sandbox with "can't get final child's PID from pipe". The kubelet is told that
    cgroup v1 is acceptable (failCgroupV1: false; Kubernetes 1.35 refuses it by default).
    The CNI firewall plugin lets pod traffic through a FORWARD chain whose policy is DROP
    (Docker's, where it runs).
    """

    def __init__(self, control_plane: LocalControlPlane, name: str = "offload-node") -> None:
        super().__init__(control_plane.workdir / "node")
        self.control_plane = control_plane
        self.name = name
        self.socket = self.workdir / "containerd.sock"

    def start(self, timeout: float = 180.0) -> None:
        self._check_installed()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._create_bridge()
        self._reject_unprogrammed_services()
        self._start_containerd()
        self._start_kubelet()
        self._start_kube_proxy()
        self._start_network_policies()
        self._wait_ready(timeout)
        self._start_cluster_dns(timeout)

    def import_images(self, images: list[str]) -> None:
        """Make images of the local Docker engine available to the node's pods (pullPolicy Never)."""
        import_docker_images(self.socket, images)

    # -- parts -------------------------------------------------------------------------------

    def _check_installed(self) -> None:
        for tool in ("containerd", "runc", "ctr", "iptables", "ip"):
            if shutil.which(tool) is None:
                raise ClusterError(f"{tool} is missing: apt-get install containerd runc iptables iproute2")
        for plugin in ("bridge", "firewall", "host-local", "loopback"):
            if not Path("/usr/lib/cni", plugin).exists():
                raise ClusterError("the CNI plugins are missing: apt-get install containernetworking-plugins")
        for binary in ("kubelet", "kube-proxy", "pause", "coredns", "kube-network-policies"):
            if not (KUBE_BIN / binary).exists():
                raise ClusterError(f"{KUBE_BIN / binary} is missing: run scripts/kube-binaries.sh")

    def _create_bridge(self) -> None:
        # Created before the kubelet, which serves (and registers its node IP) on the gateway
        # address; the bridge CNI plugin adopts it when the first pod starts.
        subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], capture_output=True, timeout=30)
        prefix = POD_SUBNET.split("/")[1]
        for command in (
            ["ip", "addr", "replace", f"{POD_GATEWAY}/{prefix}", "dev", BRIDGE],
            ["ip", "link", "set", BRIDGE, "up"],
        ):
            subprocess.run(command, check=True, capture_output=True, timeout=30)

    # A pod's packet to a Service IP that kube-proxy has not programmed yet (a Service created a
    # moment ago) would leave this machine through its default route, where this machine's
    # network may answer for any address: a kept-alive connection then talks to a stranger for
    # good (seen: KEDA's operator polling the management API got 404s from outside for
    # minutes). A cluster's Service range is not routable: refuse it, so the client's next
    # connection, once the rules exist, reaches the Service. DNAT'ed packets no longer carry a
    # Service IP when they reach FORWARD, so only unprogrammed ones match.
    # The rule lives in CNI-ADMIN, the CNI firewall plugin's chain for an administrator's
    # rules, which it consults before accepting a pod's traffic: a rule of FORWARD would sit
    # behind the plugin's accept, which the plugin puts first when the node's first pod starts.
    UNPROGRAMMED_SERVICE_RULE = (
        "CNI-ADMIN", "-s", POD_SUBNET, "-d", SERVICE_SUBNET,
        "-m", "comment", "--comment", "offload-local: Service IP not programmed yet",
        "-j", "REJECT", "--reject-with", "icmp-port-unreachable",
    )  # fmt: skip

    def _reject_unprogrammed_services(self) -> None:
        subprocess.run(["iptables", "-N", "CNI-ADMIN"], capture_output=True, timeout=30)  # may exist
        subprocess.run(["iptables", "-I", *self.UNPROGRAMMED_SERVICE_RULE], check=True, timeout=30)

    def _start_containerd(self) -> None:
        work = self.workdir
        (work / "cni").mkdir()
        (work / "cni" / "10-offload.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "offload-local",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": BRIDGE,
                            "isDefaultGateway": True,
                            "ipMasq": True,
                            # A pod reaching itself through its own Service.
                            "hairpinMode": True,
                            "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]]},
                        },
                        {"type": "firewall"},
                        {"type": "loopback"},
                    ],
                }
            )
        )
        (work / "containerd.toml").write_text(
            f"""version = 2
root = "{work / "containerd-root"}"
state = "{work / "containerd-state"}"
[grpc]
  address = "{self.socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{work / "cni"}"
"""
        )
        self._spawn("containerd", ["containerd", "--config", str(work / "containerd.toml")])
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if time.monotonic() > deadline:
                raise ClusterError(f"containerd did not start:\n{self.log_tail('containerd')}")
            time.sleep(0.2)
        import_image_archive(
            self.socket, binary_image_archive(KUBE_BIN / "pause", PAUSE_IMAGE, work / "pause.tar")
        )

    def _client_kubeconfig(self, path: Path, user: str, group: str | None = None) -> Path:
        # The user is the CN, the group the O; the SAN is only a placeholder for a client.
        cert = self.control_plane.ca.issue_cert(
            user.replace(":", "-"), common_name=user, organization_name=group
        )
        credentials = {
            "client-certificate-data": base64.b64encode(cert.cert_chain_pems[0].bytes()).decode(),
            "client-key-data": base64.b64encode(cert.private_key_pem.bytes()).decode(),
        }
        document = kubeconfig_document(
            self.control_plane.server, self.control_plane.ca.cert_pem.bytes(), credentials, user
        )
        path.write_text(yaml.safe_dump(document))
        return path

    def _start_kubelet(self) -> None:
        work = self.workdir
        # The node's identity for the Node authorizer: system:node:<name> in system:nodes.
        kubeconfig = self._client_kubeconfig(
            work / "kubelet.kubeconfig", f"system:node:{self.name}", "system:nodes"
        )
        serving = self.control_plane.ca.issue_cert(POD_GATEWAY, "127.0.0.1", self.name, common_name=self.name)
        serving.cert_chain_pems[0].write_to_path(work / "kubelet.crt")
        serving.private_key_pem.write_to_path(work / "kubelet.key")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.control_plane.workdir / "pki" / "ca.crt")},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "address": POD_GATEWAY,
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzPort": 0,
            "tlsCertFile": str(work / "kubelet.crt"),
            "tlsPrivateKeyFile": str(work / "kubelet.key"),
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "clusterDNS": [DNS_SERVICE_IP],
            "clusterDomain": CLUSTER_DOMAIN,
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,
            "failSwapOn": False,
            # A test node on a shared machine: no QoS cgroup tree, no evictions by disk level.
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "localStorageCapacityIsolation": False,
            "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
        }
        (work / "kubelet.yaml").write_text(yaml.safe_dump(config))
        self._spawn(
            "kubelet",
            [
                str(KUBE_BIN / "kubelet"),
                f"--config={work / 'kubelet.yaml'}",
                f"--kubeconfig={kubeconfig}",
                f"--hostname-override={self.name}",
                f"--node-ip={POD_GATEWAY}",
                f"--root-dir={work / 'kubelet'}",
                f"--cert-dir={work / 'kubelet-certs'}",
            ],
        )

    def _start_kube_proxy(self) -> None:
        work = self.workdir
        # system:kube-proxy is bound to system:node-proxier by the API server's bootstrap RBAC.
        kubeconfig = self._client_kubeconfig(work / "kube-proxy.kubeconfig", "system:kube-proxy")
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "hostnameOverride": self.name,
            "mode": "iptables",
            "clusterCIDR": POD_SUBNET,
            "healthzBindAddress": f"127.0.0.1:{free_port()}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            # Leave the host's sysctls alone: no conntrack table sizing, no route_localnet.
            "conntrack": {"maxPerCore": 0, "min": 0},
            "iptables": {"localhostNodePorts": False},
        }
        (work / "kube-proxy.yaml").write_text(yaml.safe_dump(config))
        self._spawn("kube-proxy", [str(KUBE_BIN / "kube-proxy"), f"--config={work / 'kube-proxy.yaml'}"])

    def _start_network_policies(self) -> None:
        # A host process, as kube-proxy is here (its manifests run it as a hostNetwork
        # DaemonSet); iptables hands it the packets to judge (network_policies).
        network_policies.install(POD_SUBNET)
        args = network_policies.agent_args(
            KUBE_BIN / "kube-network-policies", self.control_plane.kubeconfig, self.name, free_port()
        )
        self._spawn("kube-network-policies", args)

    def _wait_ready(self, timeout: float) -> None:
        from kubernetes import client

        core = client.CoreV1Api(api_client(self.control_plane.kubeconfig))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                conditions = core.read_node(self.name).status.conditions or []
                if any(c.type == "Ready" and c.status == "True" for c in conditions):
                    return
            except client.ApiException:
                pass
            time.sleep(1)
        raise ClusterError(f"node {self.name} not Ready after {timeout:g}s:\n{self.log_tail('kubelet')}")

    def _start_cluster_dns(self, timeout: float) -> None:
        from kubernetes import client, utils

        archive = binary_image_archive(KUBE_BIN / "coredns", COREDNS_IMAGE, self.workdir / "coredns.tar")
        import_image_archive(self.socket, archive)
        admin = api_client(self.control_plane.kubeconfig)
        for document in cluster_dns_objects():
            utils.create_from_dict(admin, document)
        apps = client.AppsV1Api(admin)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            status = apps.read_namespaced_deployment_status("coredns", "kube-system").status
            if (status.available_replicas or 0) >= 1:
                return
            time.sleep(1)
        raise ClusterError(f"CoreDNS not available after {timeout:g}s:\n{self.log_tail('kubelet')}")

    # -- teardown ----------------------------------------------------------------------------

    def close(self) -> None:
        for name in reversed(list(self.processes)):
            if name == "containerd":
                # The kubelet leaves its pods running: stop them before their runtime goes.
                self._remove_containers()
            self._stop(name)
        # The kubelet bind-mounts its root dir and the pods' volumes: undo them, deepest first.
        root = str(self.workdir)
        with open("/proc/mounts") as mounts:
            points = [line.split()[1] for line in mounts if line.split()[1].startswith(root)]
        for point in sorted(points, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
        if (KUBE_BIN / "kube-proxy").exists():
            subprocess.run([str(KUBE_BIN / "kube-proxy"), "--cleanup"], capture_output=True, timeout=60)
        self._remove_cni_firewall_chains()
        network_policies.remove(POD_SUBNET)  # CNI-ADMIN, with the Service rule, went with the plugin's chains
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, timeout=30)

    def _remove_containers(self) -> None:
        ctr = ["ctr", "-a", str(self.socket), "-n", "k8s.io"]
        listed = subprocess.run([*ctr, "tasks", "ls", "-q"], capture_output=True, text=True, timeout=30)
        for task in listed.stdout.split():
            subprocess.run([*ctr, "tasks", "kill", "-s", "SIGKILL", task], capture_output=True, timeout=30)
        time.sleep(1)
        for task in listed.stdout.split():
            subprocess.run([*ctr, "tasks", "rm", "-f", task], capture_output=True, timeout=30)
        containers = subprocess.run(
            [*ctr, "containers", "ls", "-q"], capture_output=True, text=True, timeout=30
        )
        for container in containers.stdout.split():
            subprocess.run([*ctr, "containers", "rm", container], capture_output=True, timeout=30)

    @staticmethod
    def _remove_cni_firewall_chains() -> None:
        # Pods killed with their runtime skip CNI DEL, so the plugins' per-pod rules stay
        # behind: the firewall plugin's chains go whole (rebuilt by the next node's first
        # pod), and so do the bridge plugin's masquerade chains of this network.
        for table, hook, marker in (
            ("filter", "FORWARD", "-j CNI-FORWARD"),
            ("nat", "POSTROUTING", 'name: \\"offload-local\\"'),
        ):
            listed = subprocess.run(
                ["iptables", "-t", table, "-S", hook], capture_output=True, text=True, timeout=30
            )
            for rule in listed.stdout.splitlines():
                if marker not in rule:
                    continue
                chain = rule.rsplit("-j ", 1)[1]
                # iptables -S quotes as a shell would: split it the same way.
                subprocess.run(
                    ["iptables", "-t", table, "-D", *shlex.split(rule)[1:]], capture_output=True, timeout=30
                )
                for args in (("-F", chain), ("-X", chain)):
                    subprocess.run(["iptables", "-t", table, *args], capture_output=True, timeout=30)
        for args in (("-F", "CNI-ADMIN"), ("-X", "CNI-ADMIN")):
            subprocess.run(["iptables", *args], capture_output=True, timeout=30)


def cluster_dns_objects() -> list[dict]:
    """CoreDNS in kube-system behind the kube-dns Service at DNS_SERVICE_IP, as kubeadm sets
    it up, minus forwarding: names outside the cluster are not needed by the e2e suite."""
    labels = {"k8s-app": "kube-dns"}
    corefile = f""".:{COREDNS_PORT} {{
    errors
    health :8080
    ready :8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
}}
"""
    meta = {"name": "coredns", "namespace": "kube-system"}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },  # fmt: skip
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}],
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"Corefile": corefile}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {**meta, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        # Its own resolver must not be itself.
                        "dnsPolicy": "Default",
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534},
                        "containers": [
                            {
                                "name": "coredns",
                                "image": COREDNS_IMAGE,
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"name": "dns", "containerPort": COREDNS_PORT, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": COREDNS_PORT, "protocol": "TCP"},
                                ],
                                "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}},
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": 8181},
                                    "periodSeconds": 2,
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "selector": labels,
                "clusterIP": DNS_SERVICE_IP,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": COREDNS_PORT, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": COREDNS_PORT, "protocol": "TCP"},
                ],
            },
        },
    ]
