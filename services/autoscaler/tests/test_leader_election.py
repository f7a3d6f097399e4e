"""Lease leader election against a real kube-apiserver (offload_testkit's control plane).

Short durations (lease 3 s, renew deadline 2 s, retry 0.2 s) keep the tests quick; the
checks are about order and exclusivity, never about how fast something happened, except
the lower bound that a standby may not take an unexpired lease.
"""

from __future__ import annotations

import time
import uuid

import pytest
from kubernetes import client

from offload_autoscaler.leader import LeaderElectionConfig, LeaderElector, LeaseLock
from offload_autoscaler.main import leader_election_config
from offload_core.config import ConfigError
from offload_testkit.amqp import wait_for
from offload_testkit.kube import api_client

LEASE = "offload-autoscaler"


@pytest.fixture
def coordination(kube_control_plane) -> client.CoordinationV1Api:
    return client.CoordinationV1Api(api_client(kube_control_plane.kubeconfig))


@pytest.fixture
def namespace(kube_control_plane) -> str:
    core = client.CoreV1Api(api_client(kube_control_plane.kubeconfig))
    name = f"leader-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def elector(coordination, namespace: str, identity: str, duration: float = 3.0) -> LeaderElector:
    config = LeaderElectionConfig(LEASE, namespace, identity, duration, duration * 2 / 3, 0.2)
    return LeaderElector(LeaseLock(config, api=coordination))


def leaders(electors: list[LeaderElector]) -> list[str]:
    return [e.config.identity for e in electors if e.is_leader()]


def test_exactly_one_of_several_candidates_leads_and_holds_the_lease(coordination, namespace):
    candidates = [elector(coordination, namespace, f"autoscaler-{i}") for i in range(3)]
    for candidate in candidates:
        candidate.start()
    try:
        wait_for(lambda: leaders(candidates), timeout=15, what="a leader")
        seen = set()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # through many renewals: never two at once
            current = leaders(candidates)
            assert len(current) <= 1, current
            seen.update(current)
            time.sleep(0.05)
        assert len(seen) == 1
        lease = coordination.read_namespaced_lease(LEASE, namespace)
        assert lease.spec.holder_identity == seen.pop()
        assert lease.spec.lease_duration_seconds == 3
    finally:
        for candidate in candidates:
            candidate.stop()


def test_a_stopping_leader_releases_so_a_standby_takes_over(coordination, namespace):
    first = elector(coordination, namespace, "first")
    first.start()
    wait_for(first.is_leader, timeout=15, what="first leads")
    second = elector(coordination, namespace, "second", duration=30.0)  # would wait 30 s otherwise
    second.start()
    try:
        time.sleep(1)
        assert not second.is_leader()
        first.stop()
        assert not first.is_leader()
        wait_for(second.is_leader, timeout=10, what="second takes the released lease")
        lease = coordination.read_namespaced_lease(LEASE, namespace)
        assert lease.spec.holder_identity == "second"
        assert lease.spec.lease_transitions == 1
    finally:
        second.stop()


def test_a_leader_that_stops_renewing_is_replaced_only_after_the_lease_expires(coordination, namespace):
    first = elector(coordination, namespace, "first", duration=4.0)
    first.start()
    wait_for(first.is_leader, timeout=15, what="first leads")
    first._stop.set()  # a hung process: no more renewals, and no release
    first._thread.join()
    stopped_renewing = time.monotonic()
    second = elector(coordination, namespace, "second", duration=4.0)
    second.start()
    try:
        wait_for(second.is_leader, timeout=20, what="second takes the expired lease")
        # The standby judges expiry on its own clock from when it first saw the record.
        assert time.monotonic() - stopped_renewing >= 4.0
    finally:
        second.stop()


def test_a_leader_whose_lease_is_taken_steps_down(coordination, namespace):
    first = elector(coordination, namespace, "first")
    first.start()
    try:
        wait_for(first.is_leader, timeout=15, what="first leads")
        # Another writer (an operator, or a candidate that judged the lease expired during a
        # partition) now holds it: the old leader must stop acting at its next attempt.
        lease = coordination.read_namespaced_lease(LEASE, namespace)
        lease.spec.holder_identity = "someone-else"
        coordination.replace_namespaced_lease(LEASE, namespace, lease)
        wait_for(lambda: not first.is_leader(), timeout=5, what="first steps down")
    finally:
        first.stop()
    # It did not release a lease it no longer held.
    assert coordination.read_namespaced_lease(LEASE, namespace).spec.holder_identity == "someone-else"


def test_leader_election_settings_from_the_environment():
    assert leader_election_config({}, "ns") is None
    config = leader_election_config(
        {"OFFLOAD_AUTOSCALER_LEADER_ELECTION": "on", "POD_NAME": "autoscaler-abc"}, "offload"
    )
    assert config is not None
    assert (config.lease_name, config.namespace) == ("offload-autoscaler", "offload")
    assert config.identity.startswith("autoscaler-abc_")
    assert (config.lease_duration, config.renew_deadline, config.retry_period) == (15.0, 10.0, 2.0)
    with pytest.raises(ConfigError, match="RENEW_DEADLINE"):
        leader_election_config(
            {"OFFLOAD_AUTOSCALER_LEADER_ELECTION": "on", "OFFLOAD_AUTOSCALER_RENEW_DEADLINE": "20"}, "ns"
        )
    with pytest.raises(ConfigError, match="OFFLOAD_AUTOSCALER_LEADER_ELECTION"):
        leader_election_config({"OFFLOAD_AUTOSCALER_LEADER_ELECTION": "maybe"}, "ns")
