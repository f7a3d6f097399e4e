"""offload-autoscaler: scales runners by queue depth (config: OFFLOAD_AUTOSCALER_CONFIG)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from offload_autoscaler.controller import Autoscaler, ScaledObjectController
from offload_autoscaler.leader import LeaderElectionConfig, LeaderElector, LeaseLock
from offload_autoscaler.spec import SpecError, load_config
from offload_autoscaler.targets import KubernetesDeployment, LocalProcessPool, ScaleTarget
from offload_core.logs import configure_logging
from offload_core.settings import ConfigError, from_env, setting
from offload_core.status import serve_status

log = logging.getLogger("offload.autoscaler")


@dataclass(frozen=True)
class AutoscalerSettings:
    config_path: str = setting("OFFLOAD_AUTOSCALER_CONFIG", "autoscaler.yaml")
    namespace: str = setting("OFFLOAD_AUTOSCALER_NAMESPACE", "default")
    status_port: int = setting("OFFLOAD_AUTOSCALER_STATUS_PORT", 9103, minimum=0)
    # On: several replicas run, one of them acts (a Lease in `namespace`).
    leader_election: bool = setting("OFFLOAD_AUTOSCALER_LEADER_ELECTION", False)
    pod_name: str = setting("POD_NAME", default_factory=socket.gethostname)
    lease_name: str = setting("OFFLOAD_AUTOSCALER_LEASE_NAME", "offload-autoscaler")
    lease_duration: float = setting("OFFLOAD_AUTOSCALER_LEASE_DURATION", 15.0, minimum=1)
    renew_deadline: float = setting("OFFLOAD_AUTOSCALER_RENEW_DEADLINE", 10.0, minimum=0.1)
    retry_period: float = setting("OFFLOAD_AUTOSCALER_RETRY_PERIOD", 2.0, minimum=0.1)


def leader_election_config(env: Mapping[str, str], namespace: str) -> LeaderElectionConfig | None:
    """OFFLOAD_AUTOSCALER_LEADER_ELECTION=on lets several replicas run with one of them acting."""
    settings = from_env(AutoscalerSettings, env, namespace=namespace)
    if not settings.leader_election:
        return None
    # The pod name says which replica leads; the suffix keeps a restarted pod from
    # mistaking its predecessor's unexpired lease for its own.
    identity = f"{settings.pod_name}_{uuid.uuid4().hex[:8]}"
    try:
        return LeaderElectionConfig(
            settings.lease_name,
            namespace,
            identity,
            settings.lease_duration,
            settings.renew_deadline,
            settings.retry_period,
        )
    except ValueError as exc:
        raise ConfigError(
            "OFFLOAD_AUTOSCALER_LEASE_DURATION, _RENEW_DEADLINE, _RETRY_PERIOD: " + str(exc)
        ) from None


def main() -> None:
    configure_logging("autoscaler")
    try:
        settings = from_env(AutoscalerSettings)
        specs = load_config(settings.config_path)
        election = leader_election_config(os.environ, settings.namespace)
    except (SpecError, ConfigError) as exc:
        log.error("invalid autoscaler config: %s", exc)
        sys.exit(2)
    namespace = settings.namespace
    targets: list[ScaleTarget] = []
    controllers = []
    now = time.monotonic()
    for spec in specs:
        target: ScaleTarget
        if spec.target.kind == "LocalProcessPool":
            target = LocalProcessPool(spec.target.command, dict(spec.target.env))
        else:
            target = KubernetesDeployment(spec.target.name, namespace)
        targets.append(target)
        controllers.append(ScaledObjectController.create(spec, target, now))
    elector = LeaderElector(LeaseLock(election)) if election is not None else None
    autoscaler = Autoscaler(controllers, elector.is_leader if elector is not None else None)
    signal.signal(signal.SIGTERM, lambda *_: autoscaler.stop())
    signal.signal(signal.SIGINT, lambda *_: autoscaler.stop())
    status = serve_status(settings.status_port, autoscaler.ready.is_set)
    log.info("autoscaler starting", extra={"fields": {"scaled_objects": [s.name for s in specs]}})
    if elector is not None:
        elector.start()
    autoscaler.run()
    if elector is not None:
        elector.stop()  # releases the lease: a standby takes over without waiting it out
    for target in targets:
        target.close()
    status.shutdown()
    log.info("autoscaler stopped")


if __name__ == "__main__":
    main()
