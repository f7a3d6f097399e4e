"""A Kubernetes control plane on loopback, assembled from upstream parts: etcd (Debian),
kube-apiserver and kube-controller-manager (built by scripts/kube-binaries.sh).

It has its own PKI (trustme CA, an admin client certificate in system:masters, a
ServiceAccount signing key), so RBAC, TokenRequest and optimistic concurrency are the real
API server's. Without a LocalNode, no kubelet runs: Pods are created by the controllers
and stay Pending; with one (containerd + kubelet), pods bound to it run.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import requests
import trustme
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from offload_testkit.processes import ServiceProcess, free_port

KUBE_BIN = Path(os.environ.get("OFFLOAD_KUBE_BIN", "/var/cache/offload/kubernetes-v1.35.4/bin"))


class ClusterError(RuntimeError):
    """The cluster could not be created or reached; the message says which step failed."""


def kubeconfig_document(server: str, ca_pem: bytes, user: dict[str, str], name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


class _Daemons:
    """The long-running programs of one cluster part, each logging to <workdir>/<name>.log."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: dict[str, ServiceProcess] = {}

    def _spawn(self, name: str, args: list[str]) -> None:
        self.processes[name] = ServiceProcess(args, env={}, log_path=self.workdir / f"{name}.log").start()

    def _check_alive(self) -> None:
        for name, service in self.processes.items():
            assert service.process is not None
            if service.process.poll() is not None:
                raise ClusterError(f"{name} exited ({service.process.returncode}):\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def _stop(self, name: str) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):  # killed after the wait
            self.processes[name].terminate()


class LocalControlPlane(_Daemons):
    """etcd + kube-apiserver + kube-controller-manager on loopback, with their own PKI."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.kubeconfig = workdir / "admin.kubeconfig"
        self.api_port = free_port()
        self.server = f"https://127.0.0.1:{self.api_port}"
        self.ca = trustme.CA(organization_name="offload e2e")

    def start(self) -> None:
        for binary in ("kube-apiserver", "kube-controller-manager"):
            if not (KUBE_BIN / binary).exists():
                raise ClusterError(f"{KUBE_BIN / binary} is missing: run scripts/kube-binaries.sh")
        if shutil.which("etcd") is None:
            raise ClusterError("etcd is missing: apt-get install etcd-server")
        pki = self.workdir / "pki"
        pki.mkdir(parents=True)
        self.ca.cert_pem.write_to_path(pki / "ca.crt")
        serving = self.ca.issue_cert(
            "127.0.0.1", "localhost", "kubernetes", "kubernetes.default.svc", common_name="kube-apiserver"
        )
        serving.cert_chain_pems[0].write_to_path(pki / "apiserver.crt")
        serving.private_key_pem.write_to_path(pki / "apiserver.key")
        # Client certificates: the user is the CN, the groups are the O.
        admin = self.ca.issue_cert(
            "offload-e2e-admin", common_name="offload-e2e-admin", organization_name="system:masters"
        )
        service_accounts = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (pki / "sa.key").write_bytes(
            service_accounts.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (pki / "sa.pub").write_bytes(
            service_accounts.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self.kubeconfig.write_text(
            yaml.safe_dump(
                kubeconfig_document(
                    self.server,
                    self.ca.cert_pem.bytes(),
                    {
                        "client-certificate-data": base64.b64encode(
                            admin.cert_chain_pems[0].bytes()
                        ).decode(),
                        "client-key-data": base64.b64encode(admin.private_key_pem.bytes()).decode(),
                    },
                    "offload-e2e",
                )
            )
        )
        etcd_client, etcd_peer = free_port(), free_port()
        self._spawn(
            "etcd",
            [
                "etcd",
                "--name=offload-e2e",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=offload-e2e=http://127.0.0.1:{etcd_peer}",
            ],
        )
        self._spawn(
            "kube-apiserver",
            [
                str(KUBE_BIN / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=true",
            ],
        )
        self._wait_ready()
        self._spawn(
            "kube-controller-manager",
            [
                str(KUBE_BIN / "kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--leader-elect=false",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--use-service-account-credentials=true",
                "--controllers=*",
            ],
        )

    def _wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with self.ca.cert_pem.tempfile() as ca:
                    response = requests.get(f"{self.server}/readyz", verify=ca, timeout=5)
                # Anonymous requests may read /readyz (system:public-info-viewer).
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[-300:]}"
            except requests.RequestException as exc:
                last = repr(exc)
            time.sleep(0.5)
        raise ClusterError(
            f"kube-apiserver not ready after {timeout}s: {last}\n{self.log_tail('kube-apiserver')}"
        )

    def close(self) -> None:
        for name in reversed(list(self.processes)):
            self._stop(name)


def api_client(kubeconfig: Path):  # noqa: ANN201 - kubernetes.client.ApiClient (imported lazily)
    """A `kubernetes` client for this kubeconfig, independent of the process-wide default."""
    from kubernetes import config

    return config.new_client_from_config(config_file=str(kubeconfig))


def service_account_token(kubeconfig: Path, namespace: str, name: str, seconds: int = 3600) -> str:
    """A token for a ServiceAccount from the TokenRequest API (what a pod's projected volume gets)."""
    from kubernetes import client

    core = client.CoreV1Api(api_client(kubeconfig))
    request = {"spec": {"audiences": [], "expirationSeconds": seconds}}
    return core.create_namespaced_service_account_token(name, namespace, request).status.token


def service_account_kubeconfig(kubeconfig: Path, namespace: str, name: str, path: Path) -> Path:
    """`kubeconfig`'s cluster, authenticated as a ServiceAccount (a TokenRequest token)."""
    token = service_account_token(kubeconfig, namespace, name)
    config = yaml.safe_load(kubeconfig.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    config["users"] = [{"name": "service-account", "user": {"token": token}}]
    context["context"]["user"] = "service-account"
    config["contexts"] = [context]
    path.write_text(yaml.safe_dump(config))
    return path


PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
POD_SUBNET = "10.244.0.0/24"


def pause_image_archive(pause_binary: Path, path: Path) -> Path:
    """An OCI image archive holding only the pause binary: the pod sandbox image, built here
    because no registry is reachable (containerd would otherwise pull it)."""

    def blob(data: bytes) -> tuple[str, int]:
        return "sha256:" + hashlib.sha256(data).hexdigest(), len(data)

    layer_buffer = io.BytesIO()
    with tarfile.open(fileobj=layer_buffer, mode="w") as layer_tar:
        content = pause_binary.read_bytes()
        info = tarfile.TarInfo("pause")
        info.size, info.mode = len(content), 0o755
        layer_tar.addfile(info, io.BytesIO(content))
    layer = layer_buffer.getvalue()
    layer_digest, layer_size = blob(layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
    ).encode()
    config_digest, config_size = blob(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": layer_size,
                }
            ],
        }
    ).encode()
    manifest_digest, manifest_size = blob(manifest)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": manifest_size,
                    "annotations": {
                        "io.containerd.image.name": PAUSE_IMAGE,
                        "org.opencontainers.image.ref.name": PAUSE_IMAGE.rsplit(":", 1)[1],
                    },
                }
            ],
        }
    ).encode()
    with tarfile.open(path, "w") as archive:
        for name, data in [
            ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
            ("index.json", index),
            (f"blobs/sha256/{layer_digest[7:]}", layer),
            (f"blobs/sha256/{config_digest[7:]}", config),
            (f"blobs/sha256/{manifest_digest[7:]}", manifest),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


class LocalNode(_Daemons):
    """A kubelet with containerd (and runc and the bridge CNI plugin, from Debian) registered
    with a LocalControlPlane: pods bound to it run, on a bridge network routed from this host.

    Runs as root. containerd's CRI must not give the sandbox a lower oom_score_adj than its
    own (restrict_oom_score_adj): inside a container, as on these machines, runc otherwise
    fails every sandbox with "can't get final child's PID from pipe". The kubelet is told
    that cgroup v1 is acceptable (failCgroupV1: false; Kubernetes 1.35 refuses it by default).
    """

    def __init__(self, control_plane: LocalControlPlane, name: str = "offload-node") -> None:
        super().__init__(control_plane.workdir / "node")
        self.control_plane = control_plane
        self.name = name
        self.socket = self.workdir / "containerd.sock"

    def start(self, timeout: float = 120.0) -> None:
        for tool in ("containerd", "runc", "ctr"):
            if shutil.which(tool) is None:
                raise ClusterError(f"{tool} is missing: apt-get install containerd runc")
        if not Path("/usr/lib/cni/bridge").exists():
            raise ClusterError("the CNI plugins are missing: apt-get install containernetworking-plugins")
        for binary in ("kubelet", "pause"):
            if not (KUBE_BIN / binary).exists():
                raise ClusterError(f"{KUBE_BIN / binary} is missing: run scripts/kube-binaries.sh")
        work = self.workdir
        (work / "cni").mkdir(parents=True)
        (work / "cni" / "10-offload.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "offload-local",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": "offload0",
                            "isGateway": True,
                            "ipMasq": True,
                            "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]]},
                        },
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
        archive = pause_image_archive(KUBE_BIN / "pause", work / "pause.tar")
        subprocess.run(
            ["ctr", "-a", str(self.socket), "-n", "k8s.io", "images", "import", str(archive)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        pki = self.control_plane.workdir / "pki"
        # The node's identity for the Node authorizer: system:node:<name> in system:nodes.
        client_cert = self.control_plane.ca.issue_cert(
            self.name, common_name=f"system:node:{self.name}", organization_name="system:nodes"
        )
        serving = self.control_plane.ca.issue_cert("127.0.0.1", self.name, common_name=self.name)
        serving.cert_chain_pems[0].write_to_path(work / "kubelet.crt")
        serving.private_key_pem.write_to_path(work / "kubelet.key")
        kubeconfig = work / "kubelet.kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                kubeconfig_document(
                    self.control_plane.server,
                    self.control_plane.ca.cert_pem.bytes(),
                    {
                        "client-certificate-data": base64.b64encode(
                            client_cert.cert_chain_pems[0].bytes()
                        ).decode(),
                        "client-key-data": base64.b64encode(client_cert.private_key_pem.bytes()).decode(),
                    },
                    "node",
                )
            )
        )
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(pki / "ca.crt")},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "address": "127.0.0.1",
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzPort": 0,
            "tlsCertFile": str(work / "kubelet.crt"),
            "tlsPrivateKeyFile": str(work / "kubelet.key"),
            "containerRuntimeEndpoint": f"unix://{self.socket}",
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
                f"--root-dir={work / 'kubelet'}",
                f"--cert-dir={work / 'kubelet-certs'}",
            ],
        )
        self._wait_ready(timeout)

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
