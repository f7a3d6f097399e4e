"""A Kubernetes control plane assembled from upstream parts: etcd (Debian), kube-apiserver,
kube-controller-manager and kube-scheduler (built by scripts/kube-binaries.sh).

It has its own PKI (trustme CA, an admin client certificate in system:masters, a
ServiceAccount signing key), so RBAC, TokenRequest and optimistic concurrency are the real
API server's. There is no node: Pods are created by the controllers and stay Pending (the
e2e suite runs pods on kind, see docs/kind.md).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import requests
import trustme
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from offload_testkit.processes import ServiceProcess, free_port
from offload_testkit.versions import pinned

KUBE_BIN = Path(
    os.environ.get("OFFLOAD_KUBE_BIN", f"/var/cache/offload/kubernetes-{pinned('KUBERNETES_VERSION')}/bin")
)
# The address the API server advertises as the `kubernetes` Service's endpoint: it must not
# be a loopback address, and nothing reaches it (there are no pods).
ADVERTISE_ADDRESS = "10.244.0.1"
SERVICE_SUBNET = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"
CLUSTER_DOMAIN = "cluster.local"


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
        for binary in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            if not (KUBE_BIN / binary).exists():
                raise ClusterError(f"{KUBE_BIN / binary} is missing: run scripts/kube-binaries.sh")
        if shutil.which("etcd") is None:
            raise ClusterError("etcd is missing: apt-get install etcd-server")
        pki = self.workdir / "pki"
        pki.mkdir(parents=True)
        self.ca.cert_pem.write_to_path(pki / "ca.crt")
        serving = self.ca.issue_cert(
            "127.0.0.1", API_SERVICE_IP, ADVERTISE_ADDRESS, "localhost", "kubernetes", "kubernetes.default",
            "kubernetes.default.svc", f"kubernetes.default.svc.{CLUSTER_DOMAIN}",
            common_name="kube-apiserver",
        )  # fmt: skip
        serving.cert_chain_pems[0].write_to_path(pki / "apiserver.crt")
        serving.private_key_pem.write_to_path(pki / "apiserver.key")
        # Client certificates: the user is the CN, the groups are the O.
        admin = self.ca.issue_cert(
            "offload-e2e-admin", common_name="offload-e2e-admin", organization_name="system:masters"
        )
        # The API server's own identity towards kubelets (logs, exec, port-forward).
        kubelet_client = self.ca.issue_cert(
            "kube-apiserver-kubelet-client", common_name="kube-apiserver-kubelet-client",
            organization_name="system:masters",
        )  # fmt: skip
        kubelet_client.cert_chain_pems[0].write_to_path(pki / "apiserver-kubelet-client.crt")
        kubelet_client.private_key_pem.write_to_path(pki / "apiserver-kubelet-client.key")
        # The aggregation layer: the API server proxies an APIService (KEDA's external
        # metrics) to its pods, vouching for the user with this front-proxy identity.
        front_proxy = trustme.CA(organization_name="offload e2e front proxy")
        front_proxy.cert_pem.write_to_path(pki / "front-proxy-ca.crt")
        proxy_client = front_proxy.issue_cert("front-proxy-client", common_name="front-proxy-client")
        proxy_client.cert_chain_pems[0].write_to_path(pki / "front-proxy-client.crt")
        proxy_client.private_key_pem.write_to_path(pki / "front-proxy-client.key")
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
                # Pods reach the API server through the bridge gateway (the `kubernetes`
                # Service's endpoint), so it listens beyond loopback; every request needs a
                # client certificate or a token except the public health endpoints.
                "--bind-address=0.0.0.0",
                f"--advertise-address={ADVERTISE_ADDRESS}",
                f"--secure-port={self.api_port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_SUBNET}",
                "--allow-privileged=true",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={pki / 'ca.crt'}",
                "--kubelet-preferred-address-types=InternalIP",
                f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
                # To the APIService's pod IPs (on this host's bridge), not its cluster IP.
                "--enable-aggregator-routing=true",
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
        self._spawn(
            "kube-scheduler",
            [
                str(KUBE_BIN / "kube-scheduler"),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--leader-elect=false",
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
