"""A runner process for the autoscaler's local pool tests: consumes t.work slowly.

Env: OFFLOAD_AMQP_URL, SLOW_SECONDS, RECORD_FILE (a line per finished message id).
"""

from __future__ import annotations

import os
import sys
import time

from offload_core.config import CoreConfig
from offload_core.runner import Message, Runner
from offload_core.topology import Topology, WorkQueue

TOPOLOGY = Topology((WorkQueue("t.work", ("signup.created.*",)),), delay_tiers=(0.5,))


def main() -> int:
    slow = float(os.environ.get("SLOW_SECONDS", "0"))
    record = open(os.environ["RECORD_FILE"], "a", buffering=1)  # noqa: SIM115

    def handle(message: Message) -> None:
        time.sleep(slow)
        record.write(f"{message.id}\n")

    return Runner(CoreConfig.from_env(), TOPOLOGY, {"t.work": handle}).run()


if __name__ == "__main__":
    sys.exit(main())
