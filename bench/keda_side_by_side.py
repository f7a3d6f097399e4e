"""KEDA and Offload's autoscaler side by side, in one run, on one cluster.

The e2e suite's kind cluster (docs/kind.md; kube-controller-manager runs the HPA) runs the chart
twice with the same mailer values, once with `autoscaling.engine=keda` (KEDA
v2.21 built from the Go module proxy, its HPA kube-controller-manager's own) and once with
`autoscaling.engine=offload`. Each gets:

- the burst, --rounds times after a random wait: 200 signups at once against a mailer paced
  to 5 emails/s per replica; the scale subresource is sampled every 0.25 s. Printed: each
  trajectory, then p50 and max of reaction (last signup accepted -> first scale-up from 0),
  time to max, and time from the last email to 0;
- the unacked case (kedacore/keda#356, #6719): 12 signups against a mailer paced to one
  email per 5 s with a prefetch that takes them all, activationValue 5. The depth falls
  below activation while the mailer still holds unacknowledged work; then what each engine
  does with the replica and how many of the 12 are mailed within 3 minutes.

Prints `bench` and `ratio` lines (ratios are offload / keda: below 1 means faster).
Run with `make bench-keda` (tens of minutes the first time: KEDA and the images are built).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml
from kubernetes import client

from offload_testkit.amqp import wait_for
from offload_testkit.kube import api_client
from offload_testkit.mailpit import mailpit_copies
from tests.e2e.clusters import keda
from tests.e2e.clusters.providers import ROOT, KindCluster
from tests.e2e.conftest import import_headers

E2E_VALUES = ROOT / "tests" / "e2e" / "e2e-values.yaml"
MAILER = "offload-mailer"
BURST = 200
MAX = 4


def values(engine: str, *, slow: bool) -> dict:
    mailer: dict = {
        "autoscaling": {
            "minReplicaCount": 0,
            "maxReplicaCount": MAX,
            "queueLength": 50 if slow else 10,
            "activationValue": 5 if slow else 0,
            "pollingInterval": 2,
            "cooldownPeriod": 20,
        }
    }
    if slow:
        mailer |= {"smtp": {"maxSendRate": 0.2}, "prefetch": 20, "workerThreads": 1}
    return {
        "autoscaling": {"engine": engine, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 5}}},
        "mailer": mailer,
        # One autoscaler without election: the same single controller KEDA runs.
        "autoscaler": {"replicas": 1, "leaderElection": {"enabled": False}},
    }


@dataclass
class Trajectory:
    """The mailer's replica count over time, sampled from the scale subresource."""

    apps: client.AppsV1Api
    namespace: str
    started: float = field(default_factory=time.monotonic)
    points: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def replicas(self) -> int:
        return self.apps.read_namespaced_deployment_scale(MAILER, self.namespace).spec.replicas or 0

    def run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                count = self.replicas()
                if not self.points or self.points[-1][1] != count:
                    self.points.append((time.monotonic(), count))
            self._stop.wait(0.25)

    def first(self, predicate, after: float) -> float | None:
        return next((t for t, r in self.points if t >= after and predicate(r)), None)

    def stop(self) -> None:
        self._stop.set()

    def text(self, origin: float) -> str:
        return " ".join(f"{t - origin:.1f}s:{r}" for t, r in self.points if t >= origin)


@contextlib.contextmanager
def release(cluster: KindCluster, engine: str, slow: bool, workdir: Path) -> Iterator[str]:
    namespace = f"bench-{engine}-{'slow' if slow else 'burst'}"
    path = workdir / f"{namespace}.yaml"
    path.write_text(yaml.safe_dump(values(engine, slow=slow)))
    args = []
    for extra in [*cluster.values_files, E2E_VALUES, path]:
        args += ["-f", str(extra)]
    cluster.helm(
        "install", "offload", str(ROOT / "charts" / "offload"), "-n", namespace, "--create-namespace",
        *args, "--wait", "--timeout", "10m", timeout=900,
    )  # fmt: skip
    try:
        yield namespace
    finally:
        cluster.helm("uninstall", "offload", "-n", namespace, "--wait", timeout=400, check=False)
        with contextlib.suppress(client.ApiException):
            client.CoreV1Api(api_client(cluster.kubeconfig)).delete_namespace(namespace)


@contextlib.contextmanager
def watched(
    cluster: KindCluster, engine: str, slow: bool, workdir: Path
) -> Iterator[tuple[Trajectory, str, str, dict[str, str]]]:
    """A release with its mailer idle at 0, its scale sampled, the web and mail URLs, and the
    batch import's Authorization header."""
    with release(cluster, engine, slow, workdir) as namespace:
        trajectory = Trajectory(client.AppsV1Api(api_client(cluster.kubeconfig)), namespace)
        wait_for(
            lambda: trajectory.replicas() == 0, timeout=240, interval=1, what=f"{engine}: idle mailer at 0"
        )
        threading.Thread(target=trajectory.run, daemon=True).start()
        try:
            with (
                cluster.service_url(namespace, "svc/offload-web", 80) as web,
                cluster.service_url(namespace, "svc/offload-mailpit", 8025) as mailpit,
            ):
                yield trajectory, web, mailpit, import_headers(api_client(cluster.kubeconfig), namespace)
        finally:
            trajectory.stop()


def signups(count: int, tag: str) -> list[dict]:
    return [
        {"name": f"Bench {i}", "email": f"{tag}-{i}-{uuid.uuid4().hex[:6]}@example.com", "fruit": "kiwi"}
        for i in range(count)
    ]


def one_burst(
    trajectory: Trajectory, web: str, mailpit: str, headers: dict[str, str], tag: str
) -> dict[str, float]:
    """200 signups at once; reaction, time to max, last email -> 0, and the trajectory."""
    trajectory.points.clear()
    batch = signups(BURST, tag)
    for start in range(0, BURST, 50):
        requests.post(
            f"{web}/api/v1/signups:batch", json=batch[start : start + 50], headers=headers, timeout=30
        ).raise_for_status()
    accepted = time.monotonic()
    addresses = {s["email"] for s in batch}
    wait_for(lambda: addresses <= set(mailpit_copies(mailpit)), timeout=600, interval=1, what="all mailed")
    mailed = time.monotonic()
    wait_for(lambda: trajectory.replicas() == 0, timeout=600, interval=1, what=f"{tag}: back at 0")
    time.sleep(1)  # one more sample after the last change
    copies = mailpit_copies(mailpit)
    reaction = trajectory.first(lambda r: r > 0, accepted)
    at_max = trajectory.first(lambda r: r == MAX, accepted)
    at_zero = trajectory.first(lambda r: r == 0, mailed)
    print(f"bench keda_side_by_side_{tag}_trajectory: {trajectory.text(accepted)}")
    return {
        "reaction": (reaction - accepted) if reaction else float("nan"),
        "to_max": (at_max - accepted) if at_max else float("nan"),
        "to_zero": (at_zero - mailed) if at_zero else float("nan"),
        "not_once": float(sum(1 for a in addresses if copies[a] != 1)),
    }


def burst(cluster: KindCluster, engine: str, workdir: Path, rounds: int) -> dict[str, list[float]]:
    """`rounds` bursts against one release, each after a random wait (a random phase of
    both loops and of the broker's statistics refresh)."""
    results: dict[str, list[float]] = {}
    with watched(cluster, engine, False, workdir) as (trajectory, web, mailpit, headers):
        for round_ in range(rounds):
            time.sleep(random.uniform(0, 4))
            for name, value in one_burst(trajectory, web, mailpit, headers, f"{engine}_{round_}").items():
                results.setdefault(name, []).append(value)
    return results


def unacked(cluster: KindCluster, engine: str, workdir: Path) -> dict[str, float]:
    with watched(cluster, engine, True, workdir) as (trajectory, web, mailpit, headers):
        batch = signups(12, f"slow-{engine}")
        requests.post(
            f"{web}/api/v1/signups:batch", json=batch, headers=headers, timeout=30
        ).raise_for_status()
        accepted = time.monotonic()
        addresses = {s["email"] for s in batch}
        deadline, mailed_at = accepted + 180, None
        while time.monotonic() < deadline:
            if addresses <= set(mailpit_copies(mailpit)):
                mailed_at = time.monotonic()
                break
            time.sleep(2)
        mailed = len(addresses & set(mailpit_copies(mailpit)))
        if mailed_at is not None:  # let a scale-down after the last email show up
            wait_for(lambda: trajectory.replicas() == 0, timeout=120, interval=1, what=f"{engine}: at 0")
        trajectory.stop()
        zero_at = trajectory.first(lambda r: r == 0, accepted + 1)
        cut = zero_at is not None and (mailed_at is None or zero_at < mailed_at)
        print(f"bench keda_side_by_side_{engine}_unacked_trajectory: {trajectory.text(accepted)}")
        return {
            "mailed": float(mailed),
            "cut": float(cut),
            "zero_at": (zero_at - accepted) if zero_at else -1.0,
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="bursts per engine")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-keda-") as tmp:
        workdir = Path(tmp)
        (workdir / "cluster").mkdir()
        cluster = KindCluster(workdir / "cluster", name="offload-bench")
        cluster.start()
        try:
            keda.install(cluster)
            results = {engine: burst(cluster, engine, workdir, args.rounds) for engine in ("keda", "offload")}
            stuck = {engine: unacked(cluster, engine, workdir) for engine in ("keda", "offload")}
        finally:
            cluster.close()
    for engine, r in results.items():
        for name, label in (
            ("reaction", "reaction"),
            ("to_max", "time_to_max"),
            ("to_zero", "last_mail_to_zero"),
        ):
            values = r[name]
            print(
                f"bench keda_side_by_side_{engine}_{label}: p50 {statistics.median(values):.1f} s,"
                f" max {max(values):.1f} s ({len(values)} bursts)"
            )
        print(f"bench keda_side_by_side_{engine}_addresses_not_mailed_once: {sum(r['not_once']):.0f}")
    for name in ("reaction", "to_max", "to_zero"):
        ratio = statistics.median(results["offload"][name]) / statistics.median(results["keda"][name])
        print(f"ratio keda_side_by_side_offload_vs_keda_{name}_p50: {ratio:.2f}")
    for engine, r in stuck.items():
        print(f"bench keda_side_by_side_{engine}_unacked_mailed_of_12: {r['mailed']:.0f}")
        print(f"bench keda_side_by_side_{engine}_unacked_zero_with_work_left: {'yes' if r['cut'] else 'no'}")
        print(f"bench keda_side_by_side_{engine}_unacked_first_zero_after: {r['zero_at']:.0f} s (-1: never)")


if __name__ == "__main__":
    main()
