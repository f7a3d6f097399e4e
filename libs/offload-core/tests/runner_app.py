"""A runner process for the signal tests: a handler that records ids and sleeps.

Env: OFFLOAD_AMQP_URL, RECORD_FILE (one line per finished message id), SLOW_SECONDS,
STARTUP_SECONDS (a slow start, before the runner connects: a line "booting" marks it),
HOLD_STOP_SIGNALS (1 by default: hold a stop signal that arrives while starting).
"""

from __future__ import annotations

import os
import sys
import time

from offload_core.config import CoreConfig
from offload_core.logs import configure_logging
from offload_core.runner import Message, Runner, hold_stop_signals
from offload_testkit.runner_thread import WORK_QUEUE, WORK_TOPOLOGY


def main() -> int:
    if os.environ.get("HOLD_STOP_SIGNALS", "1") == "1":
        hold_stop_signals()
    configure_logging("test-runner")
    record = open(os.environ["RECORD_FILE"], "a", buffering=1)  # noqa: SIM115
    slow = float(os.environ.get("SLOW_SECONDS", "0"))
    record.write("booting -\n")
    time.sleep(float(os.environ.get("STARTUP_SECONDS", "0")))

    def handle(message: Message) -> None:
        record.write(f"start {message.id}\n")
        time.sleep(slow)
        record.write(f"done {message.id}\n")

    return Runner(CoreConfig.from_env(), WORK_TOPOLOGY, {WORK_QUEUE: handle}).run()


if __name__ == "__main__":
    sys.exit(main())
