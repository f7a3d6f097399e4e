"""offload-topology declare: the topology step, run once as the broker's administrator
(OFFLOAD_AMQP_URL) where the services' own users may not declare (grants.py). The chart
runs it as a Job beside the broker, so it waits for the broker for up to --wait seconds.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import pika.exceptions

from offload_core.config import ConfigError, CoreConfig
from offload_core.topology import DEAD_EXCHANGE, EVENTS_EXCHANGE, RETRY_EXCHANGE, declare, stack_topology


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="offload-topology", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["declare"])
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="retry a broker that does not answer or does not know the user yet for this long",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pika").setLevel(logging.CRITICAL)  # its tracebacks say no more than ours
    try:
        config = CoreConfig.from_env(service_name="topology")
    except ConfigError as error:
        print(f"offload-topology: {error}", file=sys.stderr)
        return 2
    topology = stack_topology(config.delay_tiers, config.delivery_limit)
    deadline = time.monotonic() + args.wait
    while True:
        try:
            declare(config.amqp_url, topology)
            break
        except pika.exceptions.AMQPConnectionError as error:
            # Unreachable, or a login the broker refuses: one that has not imported its
            # definitions yet does, so both are worth waiting for.
            if time.monotonic() >= deadline:
                print(f"offload-topology: could not connect: {error!r}", file=sys.stderr)
                return 1
            print(f"offload-topology: could not connect ({error!r}), retrying", file=sys.stderr)
            time.sleep(2)
        except pika.exceptions.AMQPError as error:
            # Refused or a conflicting declaration: waiting would not change it.
            print(f"offload-topology: declaring failed: {error!r}", file=sys.stderr)
            return 1
    print(
        f"offload-topology: declared {len(topology.queues)} work queues, their parking queues and "
        f"{len(topology.delay_tiers)} delay tiers each, and the exchanges "
        f"{EVENTS_EXCHANGE}, {RETRY_EXCHANGE}, {DEAD_EXCHANGE}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
