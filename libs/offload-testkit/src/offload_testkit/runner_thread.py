"""A Runner in a thread of the test process, on a small topology of its own."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from offload_core.config import CoreConfig
from offload_core.runner import BatchHandler, Handler, Runner
from offload_core.topology import Topology, WorkQueue
from offload_testkit.amqp import wait_for

WORK_QUEUE = "t.work"
# One work queue bound to signups, with short delay tiers so retries come back quickly.
WORK_TOPOLOGY = Topology((WorkQueue(WORK_QUEUE, ("signup.created.*",)),), delay_tiers=(0.2, 0.5))


class RunnerThread:
    """A Runner on WORK_QUEUE in a thread: `handler` per message, or `batch_handler` with
    `batch_size`/`batch_wait`; other keywords override the CoreConfig. Ready on enter,
    stopped (and joined) on exit."""

    def __init__(
        self,
        config: CoreConfig,
        handler: Handler | None = None,
        *,
        batch_handler: BatchHandler | None = None,
        batch_size: int = 100,
        batch_wait: float = 0.05,
        **overrides: Any,
    ) -> None:
        config = dataclasses.replace(config, **overrides)
        if batch_handler is None:
            assert handler is not None
            self.runner = Runner(config, WORK_TOPOLOGY, {WORK_QUEUE: handler})
        else:
            self.runner = Runner(
                config,
                WORK_TOPOLOGY,
                batch_handlers={WORK_QUEUE: batch_handler},
                batch_size=batch_size,
                batch_wait=batch_wait,
            )
        self.exit_code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.exit_code = self.runner.run(install_signal_handlers=False)

    def __enter__(self) -> RunnerThread:
        self.thread.start()
        wait_for(lambda: self.runner.ready, what="runner ready")
        return self

    def __exit__(self, *exc: object) -> None:
        self.runner.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()
