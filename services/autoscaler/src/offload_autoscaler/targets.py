"""What gets scaled: a Kubernetes Deployment (scale subresource) or a local process pool."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Protocol

log = logging.getLogger("offload.autoscaler.target")


class ScaleTarget(Protocol):
    def current(self) -> int: ...

    def scale(self, replicas: int) -> None: ...

    def close(self) -> None: ...


class LocalProcessPool:
    """Runner processes on this machine: started to scale up, SIGTERMed (newest first) to scale down.

    A stopping process no longer counts as a replica, but the pool waits for its graceful
    exit (reaped on every call) so in-flight work finishes and is acked.

    Each process holds a slot, the lowest not held by a running or stopping one, and
    `{slot}` in an env value becomes that number: `"911{slot}"` gives each mailer a status
    port of its own that a local Prometheus can list (make dev).
    """

    def __init__(self, command: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.command = list(command)
        self.env = {**os.environ, **(env or {})}
        self.running: list[subprocess.Popen[bytes]] = []
        self.stopping: list[subprocess.Popen[bytes]] = []
        self.slots: dict[int, int] = {}  # pid → slot

    def _reap(self) -> None:
        for process in [p for p in self.running if p.poll() is not None]:
            log.warning(
                "runner exited on its own", extra={"fields": {"pid": process.pid, "code": process.returncode}}
            )
            self.running.remove(process)
            self.slots.pop(process.pid, None)
        for process in [p for p in self.stopping if p.poll() is not None]:
            log.info("runner stopped", extra={"fields": {"pid": process.pid, "code": process.returncode}})
            self.stopping.remove(process)
            self.slots.pop(process.pid, None)

    def current(self) -> int:
        self._reap()
        return len(self.running)

    def scale(self, replicas: int) -> None:
        self._reap()
        while len(self.running) < replicas:
            slot = free_slot(set(self.slots.values()))
            env = {key: value.replace("{slot}", str(slot)) for key, value in self.env.items()}
            process = subprocess.Popen(self.command, env=env)
            self.running.append(process)
            self.slots[process.pid] = slot
            log.info("runner started", extra={"fields": {"pid": process.pid, "slot": slot}})
        while len(self.running) > replicas:
            process = self.running.pop()
            process.send_signal(signal.SIGTERM)
            self.stopping.append(process)

    def close(self, timeout: float = 30.0) -> None:
        self.scale(0)
        for process in self.stopping:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
        self._reap()


def free_slot(held: set[int]) -> int:
    """The lowest slot number not in `held`."""
    return next(slot for slot in range(len(held) + 1) if slot not in held)


class KubernetesDeployment:
    """apps/v1 Deployment through its scale subresource: get and patch, nothing else."""

    def __init__(self, name: str, namespace: str, api: object | None = None) -> None:
        from kubernetes import client, config

        if api is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api = client.AppsV1Api()
        self.api = api
        self.name, self.namespace = name, namespace

    def current(self) -> int:
        scale = self.api.read_namespaced_deployment_scale(self.name, self.namespace)  # type: ignore[attr-defined]  # api is typed as the generic client
        return int(scale.spec.replicas or 0)

    def scale(self, replicas: int) -> None:
        body = {"spec": {"replicas": replicas}}
        self.api.patch_namespaced_deployment_scale(self.name, self.namespace, body)  # type: ignore[attr-defined]  # api is typed as the generic client

    def close(self) -> None:
        pass
