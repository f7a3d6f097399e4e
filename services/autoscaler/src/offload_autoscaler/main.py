"""offload-autoscaler: scales runners by queue depth (config: OFFLOAD_AUTOSCALER_CONFIG)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time

from offload_autoscaler.controller import Autoscaler, ScaledObjectController
from offload_autoscaler.spec import SpecError, load_config
from offload_autoscaler.targets import KubernetesDeployment, LocalProcessPool, ScaleTarget
from offload_core.logs import configure_logging
from offload_core.status import serve_status

log = logging.getLogger("offload.autoscaler")


def main() -> None:
    configure_logging("autoscaler")
    path = os.environ.get("OFFLOAD_AUTOSCALER_CONFIG", "autoscaler.yaml")
    try:
        specs = load_config(path)
    except SpecError as exc:
        log.error("invalid autoscaler config: %s", exc)
        sys.exit(2)
    namespace = os.environ.get("OFFLOAD_AUTOSCALER_NAMESPACE", "default")
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
    autoscaler = Autoscaler(controllers)
    signal.signal(signal.SIGTERM, lambda *_: autoscaler.stop())
    signal.signal(signal.SIGINT, lambda *_: autoscaler.stop())
    status = serve_status(
        int(os.environ.get("OFFLOAD_AUTOSCALER_STATUS_PORT", "9103")), autoscaler.ready.is_set
    )
    log.info("autoscaler starting", extra={"fields": {"scaled_objects": [s.name for s in specs]}})
    autoscaler.run()
    for target in targets:
        target.close()
    status.shutdown()
    log.info("autoscaler stopped")


if __name__ == "__main__":
    main()
