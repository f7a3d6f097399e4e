"""offload-mailer: the queue runner that sends welcome emails."""

from __future__ import annotations

import logging
import sys

from offload_core import tracing
from offload_core.config import ConfigError, CoreConfig
from offload_core.logs import configure_logging
from offload_core.publisher import Publisher
from offload_core.runner import Runner, hold_stop_signals
from offload_core.status import serve_status
from offload_core.topology import stack_topology
from offload_mailer.backends import make_backend
from offload_mailer.config import MailerConfig
from offload_mailer.handler import WelcomeMailer
from offload_mailer.store import open_store

log = logging.getLogger("offload.mailer")


def main() -> None:
    hold_stop_signals()
    configure_logging("mailer")
    try:
        core = CoreConfig.from_env(service_name="mailer")
        config = MailerConfig.from_env()
        tracing.configure("mailer")
    except ConfigError as exc:
        log.error("invalid configuration: %s", exc)
        sys.exit(2)
    topology = stack_topology(core.delay_tiers, core.delivery_limit)
    publisher = Publisher(core, topology=None, name="mailer-events").start()
    backend = make_backend(config)
    mailer = WelcomeMailer(config, backend, open_store(config.store_url), publisher)
    runner = Runner(core, topology, {queue: mailer.handle for queue in config.queues}, publisher=publisher)
    status = serve_status(config.status_port, lambda: runner.ready)
    log.info(
        "mailer starting",
        extra={
            "fields": {
                "queues": config.queues,
                "backend": config.backend,
                "store": config.store_url.split("://")[0],
            }
        },
    )
    code = runner.run()
    status.shutdown()
    publisher.close(timeout=5)
    backend.close()
    tracing.shutdown()
    sys.exit(code)


if __name__ == "__main__":
    main()
