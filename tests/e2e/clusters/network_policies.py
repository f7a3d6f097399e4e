"""NetworkPolicies enforced on the local node: kube-network-policies judges, iptables diverts.

kube-network-policies is a policy engine on an NFQUEUE: the kernel hands it the first packet
of each new connection to or from a pod, and it answers accept or drop from the policies it
watches. Its own nftables rules use the `queue` expression, which this kernel lacks
(CONFIG_NFT_QUEUE is not set; its sync logs "netlink receive: no such file or directory"
and is retried, harmlessly). The iptables NFQUEUE target is built in, so the same packets
reach the same queue through the rules below, which follow the agent's nftables table
(pkg/dataplane/controller.go, syncNFTablesRules, v1.1.1):

- POSTROUTING, before source NAT: connections already judged (conntrack established, or
  carrying the agent's accept label) and the node's own root processes (the kubelet's probes)
  pass; a new connection from or to a pod goes to the queue. br_netfilter puts packets
  between pods on the same bridge through this hook too.
- INPUT: a new connection from a pod to this node itself (the API server listens here).

The accept label also needs conntrack's labels extension, which the kernel adds to new
connections only while some rule uses labels: the connlabel match does.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

QUEUE = 100
ACCEPTED_LABEL = 100  # the agent's default --ct-label-accept bit
CHAIN = "OFFLOAD-NETPOL"


@dataclass(frozen=True)
class Diversion:
    """CHAIN in `table`, jumped to from `hook`: sends new pod connections to the agent's queue."""

    table: str
    hook: str
    rules: tuple[tuple[str, ...], ...]


def diversions(pod_subnet: str) -> list[Diversion]:
    queue = ("-j", "NFQUEUE", "--queue-num", str(QUEUE), "--queue-bypass")
    forwarded = Diversion(
        "mangle",
        "POSTROUTING",
        (
            ("-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"),
            ("-m", "connlabel", "--label", str(ACCEPTED_LABEL), "-j", "RETURN"),
            ("-m", "owner", "--uid-owner", "0", "-j", "RETURN"),
            ("-s", pod_subnet, *queue),
            ("-d", pod_subnet, *queue),
        ),
    )
    to_node = Diversion(
        "filter",
        "INPUT",
        (("-s", pod_subnet, "-m", "conntrack", "--ctstate", "NEW", *queue),),
    )
    return [forwarded, to_node]


def install(pod_subnet: str) -> None:
    remove(pod_subnet)  # what a run that did not close left behind
    for d in diversions(pod_subnet):
        _iptables(d.table, "-N", CHAIN)
        for rule in d.rules:
            _iptables(d.table, "-A", CHAIN, *rule)
        _iptables(d.table, "-I", d.hook, "-j", CHAIN)


def remove(pod_subnet: str) -> None:
    for d in diversions(pod_subnet):
        for args in (("-D", d.hook, "-j", CHAIN), ("-F", CHAIN), ("-X", CHAIN)):
            _iptables(d.table, *args, check=False)


def agent_args(binary: Path, kubeconfig: Path, node_name: str, metrics_port: int) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--hostname-override={node_name}",
        # This containerd does not enable NRI: the pods' IPs come from the API server.
        "--disable-nri",
        f"--nfqueue-id={QUEUE}",
        # Re-judging established connections after a policy change needs the agent's own
        # nftables rules; new connections are judged either way.
        "--strict-mode=false",
        f"--metrics-bind-address=127.0.0.1:{metrics_port}",
        "--v=2",
    ]


def _iptables(table: str, *args: str, check: bool = True) -> None:
    subprocess.run(["iptables", "-w", "-t", table, *args], check=check, capture_output=True, timeout=30)
