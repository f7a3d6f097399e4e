"""Helpers shared by the core's broker tests."""

from __future__ import annotations

import dataclasses
import threading

from runner_app import TOPOLOGY

from offload_core.envelope import Envelope
from offload_core.runner import Runner
from offload_testkit.amqp import wait_for

QUEUE = "t.work"


def signup() -> Envelope:
    return Envelope(
        type="signup.created",
        data={"name": "Ada", "email": "ada@example.com", "fruit": "kiwi", "lane": "high"},
    )


class RunnerThread:
    """A Runner on QUEUE in a thread: `handler` per message, or `batch_handler` with
    `batch_size`/`batch_wait`; other keywords override the CoreConfig."""

    def __init__(
        self, config, handler=None, *, batch_handler=None, batch_size=100, batch_wait=0.05, **overrides
    ):
        config = dataclasses.replace(config, **overrides)
        if batch_handler is None:
            self.runner = Runner(config, TOPOLOGY, {QUEUE: handler})
        else:
            self.runner = Runner(
                config,
                TOPOLOGY,
                batch_handlers={QUEUE: batch_handler},
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

    def __exit__(self, *exc) -> None:
        self.runner.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()
