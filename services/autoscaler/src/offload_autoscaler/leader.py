"""Leader election on a coordination.k8s.io/v1 Lease, so several autoscaler replicas can run
and exactly one of them scales.

The protocol is client-go's (tools/leaderelection): a candidate takes the Lease when it has
no holder or when its record has not changed for `leaseDurationSeconds` *as observed by this
process's own monotonic clock* (so clock skew between nodes does not matter); the leader
renews every `retry_period` and gives up leading if it could not renew within
`renew_deadline`; on shutdown it releases the Lease so a standby takes over at once. Every
write is a replace carrying the resourceVersion it read, so two candidates cannot both win.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Gauge

log = logging.getLogger("offload.autoscaler.leader")

IS_LEADER = Gauge("offload_autoscaler_leader", "1 while this replica holds the leader Lease.")


@dataclass(frozen=True)
class LeaderElectionConfig:
    lease_name: str
    namespace: str
    identity: str
    lease_duration: float = 15.0  # client-go's defaults
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        # client-go refuses these too: a leader must give up before a standby may take over.
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError("leader election needs lease duration > renew deadline > retry period > 0")


def _micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseLock:
    """One Lease object, read and written through the CoordinationV1 API."""

    def __init__(self, config: LeaderElectionConfig, api: Any = None) -> None:
        from kubernetes import client

        self.config = config
        self.api = api if api is not None else client.CoordinationV1Api()
        # The Lease record last seen (holder, resourceVersion: every write changes it) and
        # when, on the monotonic clock: expiry is judged from these.
        self.observed: tuple[str | None, str | None] | None = None
        self.observed_at = 0.0

    def _body(self, holder: str, acquired: datetime, transitions: int, duration: int) -> dict[str, Any]:
        now = _micro_time(datetime.now(UTC))
        return {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "acquireTime": _micro_time(acquired),
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this process holds the Lease afterwards."""
        from kubernetes.client.exceptions import ApiException

        name, namespace, identity = self.config.lease_name, self.config.namespace, self.config.identity
        duration = max(1, round(self.config.lease_duration))
        try:
            lease = self.api.read_namespaced_lease(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {
                "metadata": {"name": name, "namespace": namespace},
                "spec": self._body(identity, datetime.now(UTC), 0, duration),
            }
            try:
                self.api.create_namespaced_lease(namespace, body)
            except ApiException as create_exc:
                if create_exc.status == 409:  # another candidate created it first
                    return False
                raise
            self._observe(identity, None)
            return True
        spec = lease.spec
        holder = spec.holder_identity or None
        record = (holder, lease.metadata.resource_version)
        if record != self.observed:
            self._observe(*record)
        now = time.monotonic()
        held_by_other = holder not in (None, identity)
        if held_by_other and now < self.observed_at + (spec.lease_duration_seconds or duration):
            return False
        transitions = spec.lease_transitions or 0
        if holder == identity:
            acquired = spec.acquire_time or datetime.now(UTC)
        else:
            acquired, transitions = datetime.now(UTC), transitions + 1
        lease.spec = self._body(identity, acquired, transitions, duration)
        try:
            # replace (not patch) sends metadata.resourceVersion: a concurrent writer gets 409.
            updated = self.api.replace_namespaced_lease(name, namespace, lease)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        self._observe(identity, updated.metadata.resource_version)
        if holder != identity:
            log.info("took over the lease", extra={"fields": {"lease": name, "previous_holder": holder}})
        return True

    def held_by_other(self) -> bool:
        return self.observed is not None and self.observed[0] not in (None, self.config.identity)

    def _observe(self, holder: str | None, version: str | None) -> None:
        self.observed, self.observed_at = (holder, version), time.monotonic()

    def release(self) -> None:
        """Hand the Lease back (empty holder, 1 s duration) so a standby need not wait it out."""
        from kubernetes.client.exceptions import ApiException

        try:
            lease = self.api.read_namespaced_lease(self.config.lease_name, self.config.namespace)
            if lease.spec.holder_identity != self.config.identity:
                return
            lease.spec.holder_identity = None
            lease.spec.lease_duration_seconds = 1
            lease.spec.renew_time = _micro_time(datetime.now(UTC))
            self.api.replace_namespaced_lease(self.config.lease_name, self.config.namespace, lease)
            log.info("released the lease", extra={"fields": {"lease": self.config.lease_name}})
        except ApiException as exc:
            log.warning(
                "could not release the lease", extra={"fields": {"error": f"{exc.status} {exc.reason}"}}
            )


class LeaderElector:
    """Runs the election in a thread; `is_leader()` tells the control loop whether to act."""

    def __init__(self, lock: LeaseLock) -> None:
        self.lock = lock
        self.config = lock.config
        self._leader = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)

    def is_leader(self) -> bool:
        return self._leader.is_set()

    def start(self) -> None:
        log.info(
            "standing for leader",
            extra={"fields": {"lease": self.config.lease_name, "identity": self.config.identity}},
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.config.renew_deadline + 5)
        if self._leader.is_set():
            self._set_leader(False)
            self.lock.release()

    def _attempt(self) -> bool:
        try:
            return self.lock.try_acquire_or_renew()
        except Exception as exc:  # API unreachable, 5xx, RBAC: a failed attempt, retried
            log.warning("lease attempt failed", extra={"fields": {"error": repr(exc)}})
            return False

    def _set_leader(self, leading: bool) -> None:
        if leading == self._leader.is_set():
            return
        if leading:
            self._leader.set()
            log.info("became leader", extra={"fields": {"identity": self.config.identity}})
        else:
            self._leader.clear()
            log.warning("stopped leading", extra={"fields": {"identity": self.config.identity}})
        IS_LEADER.set(1 if leading else 0)

    def _run(self) -> None:
        last_renewal = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if self._attempt():
                last_renewal = now
                self._set_leader(True)
            elif self._leader.is_set() and (
                self.lock.held_by_other() or now - last_renewal > self.config.renew_deadline
            ):
                self._set_leader(False)
            self._stop.wait(self.config.retry_period)
