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
    def __init__(self, config, handler, **overrides) -> None:
        self.runner = Runner(dataclasses.replace(config, **overrides), TOPOLOGY, {QUEUE: handler})
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
