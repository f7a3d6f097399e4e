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

from offload_autoscaler.controller import Autoscaler, ScaledObjectController
from offload_autoscaler.leader import LeaderElectionConfig, LeaderElector, LeaseLock
from offload_autoscaler.spec import SpecError, load_config
from offload_autoscaler.targets import KubernetesDeployment, LocalProcessPool, ScaleTarget
from offload_core.config import ConfigError, env_number, env_switch, env_text
from offload_core.logs import configure_logging
from offload_core.status import serve_status

log = logging.getLogger("offload.autoscaler")


def leader_election_config(env: Mapping[str, str], namespace: str) -> LeaderElectionConfig | None:
    """OFFLOAD_AUTOSCALER_LEADER_ELECTION=on lets several replicas run with one of them acting."""
    if not env_switch(env, "OFFLOAD_AUTOSCALER_LEADER_ELECTION", False):
        return None
    # The pod name says which replica leads; the suffix keeps a restarted pod from
    # mistaking its predecessor's unexpired lease for its own.
    identity = f"{env_text(env, 'POD_NAME', socket.gethostname())}_{uuid.uuid4().hex[:8]}"
    lease_name = env_text(env, "OFFLOAD_AUTOSCALER_LEASE_NAME", "offload-autoscaler")
    duration = env_number(env, "OFFLOAD_AUTOSCALER_LEASE_DURATION", 15.0, minimum=1)
    deadline = env_number(env, "OFFLOAD_AUTOSCALER_RENEW_DEADLINE", 10.0, minimum=0.1)
    retry = env_number(env, "OFFLOAD_AUTOSCALER_RETRY_PERIOD", 2.0, minimum=0.1)
    try:
        return LeaderElectionConfig(lease_name, namespace, identity, duration, deadline, retry)
    except ValueError as exc:
        raise ConfigError(
            "OFFLOAD_AUTOSCALER_LEASE_DURATION, _RENEW_DEADLINE, _RETRY_PERIOD: " + str(exc)
        ) from None


def main() -> None:
    configure_logging("autoscaler")
    path = os.environ.get("OFFLOAD_AUTOSCALER_CONFIG", "autoscaler.yaml")
    try:
        specs = load_config(path)
    except SpecError as exc:
        log.error("invalid autoscaler config: %s", exc)
        sys.exit(2)
    namespace = os.environ.get("OFFLOAD_AUTOSCALER_NAMESPACE", "default")
    try:
        election = leader_election_config(os.environ, namespace)
    except ConfigError as exc:
        log.error("invalid autoscaler config: %s", exc)
        sys.exit(2)
    targets: list[ScaleTarget] = []
    controllers = []
    now = time.monotonic()
    for spec in specs:
        target: ScaleTarget
        if spec.target_kind == "LocalProcessPool":
            target = LocalProcessPool(
                spec.target_command, {"OFFLOAD_MAILER_STATUS_PORT": "0", "OFFLOAD_STATS_STATUS_PORT": "0"}
            )
        else:
            target = KubernetesDeployment(spec.target_name, namespace)
        targets.append(target)
        controllers.append(ScaledObjectController.create(spec, target, now))
    elector = LeaderElector(LeaseLock(election)) if election is not None else None
    autoscaler = Autoscaler(controllers, elector.is_leader if elector is not None else None)
    signal.signal(signal.SIGTERM, lambda *_: autoscaler.stop())
    signal.signal(signal.SIGINT, lambda *_: autoscaler.stop())
    status = serve_status(
        int(os.environ.get("OFFLOAD_AUTOSCALER_STATUS_PORT", "9103")), autoscaler.ready.is_set
    )
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
