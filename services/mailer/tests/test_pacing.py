"""SendPacer on a fake clock: the spacing is arithmetic, so no wall-clock timing is asserted."""

from __future__ import annotations

import threading

import pytest

from offload_core.config import ConfigError
from offload_mailer.config import MailerConfig
from offload_mailer.pacing import SendPacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_sends_are_spaced_one_interval_apart():
    clock = FakeClock()
    pacer = SendPacer(4, clock=clock, sleep=clock.sleep)
    waits = [pacer.wait() for _ in range(5)]
    assert waits == [0.0, 0.25, 0.25, 0.25, 0.25]


def test_an_idle_pacer_lets_the_next_send_go_at_once():
    clock = FakeClock()
    pacer = SendPacer(2, clock=clock, sleep=clock.sleep)
    pacer.wait()
    clock.now += 10  # quiet for a while: no credit is saved up beyond the next slot
    assert pacer.wait() == 0.0
    assert pacer.wait() == 0.5


def test_threads_share_one_ceiling():
    """Slots are handed out under a lock: N concurrent callers get N distinct slots."""
    clock = FakeClock()
    slots: list[float] = []
    lock = threading.Lock()

    def record(seconds: float) -> None:
        with lock:
            slots.append(seconds)

    pacer = SendPacer(10, clock=clock, sleep=record)  # the clock stands still: delays add up
    threads = [threading.Thread(target=pacer.wait) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(round(s, 6) for s in slots) == [round(0.1 * i, 6) for i in range(1, 8)]


def test_rate_zero_never_waits():
    clock = FakeClock()
    pacer = SendPacer(0, clock=clock, sleep=clock.sleep)
    assert [pacer.wait() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert clock.slept == []


def test_the_rate_comes_from_the_environment():
    assert MailerConfig.from_env({}).max_send_rate == 0
    assert MailerConfig.from_env({"OFFLOAD_MAILER_MAX_SEND_RATE": "2.5"}).max_send_rate == 2.5
    for bad in ("-1", "fast"):
        with pytest.raises(ConfigError, match="OFFLOAD_MAILER_MAX_SEND_RATE"):
            MailerConfig.from_env({"OFFLOAD_MAILER_MAX_SEND_RATE": bad})
