"""Chaos scenarios: the whole local stack under a fault, judged by what reached the mail sink.

Each scenario starts a private broker vhost, the web, two mailers (Redis sent-store),
the stats runner and a real SMTP server (aiosmtpd). It sends a bounded workload of
signups (and page requests), injects its fault, waits for the queues to drain and
reports:

    chaos <scenario>: accepted=<202s> delivered=<emails> duplicates=<n> lost=<n> stats_exact=<yes|no>

Pass = lost 0, no duplicates beyond the mailer's documented window (crash between the
SMTP server's acceptance and the sent-store write: at most one per in-flight message
per killed mailer, counted separately as `window`), stats exact, and no false 202.

`python -m offload_testkit.chaos [--signups N] [scenario ...]` (make chaos) runs them
all; tests/test_chaos.py runs them with small workloads.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import random
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pika
import redis
import requests

from offload_testkit.amqp import ready_count, wait_for
from offload_testkit.rabbitmq import PrivateBroker
from offload_testkit.redis_server import PrivateRedis
from offload_testkit.smtp import SmtpSink
from offload_testkit.stack import Service, start_mailer, start_stats_runner, start_web

WORK_QUEUES = ("mailer.signups.high", "stats.activity", "stats.requests")
MAILER_THREADS = 4


@dataclasses.dataclass
class Result:
    scenario: str
    accepted: int
    delivered: int
    duplicates: int
    lost: int
    stats_exact: bool
    window: int  # duplicates the mailer's documented window allows in this scenario
    false_202: int = 0  # signups answered 202 while the broker could not have confirmed them
    problems: list[str] = dataclasses.field(default_factory=list)  # scenario-specific failed checks

    @property
    def passed(self) -> bool:
        return (
            self.lost == 0
            and self.duplicates <= self.window
            and self.stats_exact
            and not self.false_202
            and not self.problems
        )

    def line(self) -> str:
        return (
            f"chaos {self.scenario}: accepted={self.accepted} delivered={self.delivered} "
            f"duplicates={self.duplicates} lost={self.lost} stats_exact={'yes' if self.stats_exact else 'no'}"
            f" false_202={self.false_202} (documented window allows {self.window})"
            + "".join(f"; {problem}" for problem in self.problems)
        )


class Stack:
    def __init__(self, broker: PrivateBroker, redis_url: str, workdir: Path) -> None:
        self.broker = broker
        self.workdir = workdir
        self.vhost = broker.create_vhost()
        self.amqp_url = broker.amqp_url(self.vhost)
        self.smtp = SmtpSink(delay=0.005).start()
        self.env = {
            "OFFLOAD_AMQP_URL": self.amqp_url,
            "OFFLOAD_DELAY_TIERS": "0.2,0.5,1",
            "OFFLOAD_MAX_ATTEMPTS": "30",
            "OFFLOAD_RECONNECT_MAX_DELAY": "1",
            "OFFLOAD_CONFIRM_TIMEOUT": "2",
            "OFFLOAD_LOG_FORMAT": "text",
        }
        self.mailer_env = self.env | {
            "OFFLOAD_MAILER_BACKEND": "smtp",
            "OFFLOAD_SMTP_PORT": str(self.smtp.port),
            "OFFLOAD_SMTP_TIMEOUT": "2",
            "OFFLOAD_MAILER_STORE_URL": redis_url,
            "OFFLOAD_WORKER_THREADS": str(MAILER_THREADS),
            "OFFLOAD_PREFETCH": "8",
        }
        self.stats_db = workdir / "stats.db"
        self.web = start_web(self.env, workdir)
        self.mailers = [self.start_mailer() for _ in range(2)]
        self.stats = self.start_stats()
        self.accepted: set[str] = set()

    def start_mailer(self) -> Service:
        return start_mailer(self.mailer_env, self.workdir, name=f"mailer-{time.monotonic_ns()}")

    def start_stats(self) -> Service:
        env = self.env | {
            "OFFLOAD_STATS_STORE_URL": f"sqlite:///{self.stats_db}",
            "OFFLOAD_STATS_BATCH_SIZE": "50",
        }
        return start_stats_runner(env, self.workdir, name=f"stats-{time.monotonic_ns()}")

    def send(self, count: int, workers: int = 8) -> None:
        """Post `count` signups (and a page view each); remember every id answered 202."""

        def one(i: int) -> None:
            body = {
                "name": f"Chaos {i}",
                "email": f"c{i}@example.com",
                "fruit": random.choice(["kiwi", "pear"]),
            }
            try:
                response = requests.post(self.web.url + "/api/v1/signups", json=body, timeout=10)
                requests.get(self.web.url + "/", timeout=10)
            except requests.RequestException:
                return
            if response.status_code == 202:
                with lock:
                    self.accepted.add(response.json()["id"])

        lock = threading.Lock()
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, range(count)))

    def drained(self) -> bool:
        try:
            return all(ready_count(self.amqp_url, q) == 0 for q in WORK_QUEUES) and self._no_unacked()
        except pika.exceptions.AMQPError:
            return False

    def _no_unacked(self) -> bool:
        url = f"{self.broker.management_url}/api/queues/{self.vhost}"
        queues = requests.get(url, auth=("guest", "guest"), timeout=5).json()
        return all(q.get("messages_unacknowledged", 0) == 0 for q in queues if q["name"] in WORK_QUEUES)

    def consumers(self, queue: str) -> int:
        url = f"{self.broker.management_url}/api/queues/{self.vhost}/{queue}"
        return requests.get(url, auth=("guest", "guest"), timeout=5).json().get("consumers", 0)

    def result(self, scenario: str, window: int, timeout: float = 120) -> Result:
        expected = {f"<signup-{i}@offload.localhost>" for i in self.accepted}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if expected <= set(self.smtp.by_header("Message-ID")) and self.drained():
                break
            time.sleep(0.5)
        time.sleep(2)  # a stats batch in flight lands
        emails = self.smtp.by_header("Message-ID")
        delivered = len(expected & set(emails))
        duplicates = sum(len(copies) - 1 for copies in emails.values())
        with sqlite3.connect(self.stats_db) as db:
            counters = dict(((f, k), v) for f, k, v in db.execute("SELECT family, key, value FROM counters"))
        # Exact: every distinct signup that reached the mailer is counted once, every sent mail once.
        signups_counted = counters.get(("signups", "total"), 0)
        mails_counted = counters.get(("mails", "sent"), 0)
        stats_exact = signups_counted == len(emails) and mails_counted == len(emails)
        result = Result(
            scenario,
            len(self.accepted),
            delivered,
            duplicates,
            len(expected) - delivered,
            stats_exact,
            window,
        )
        if not stats_exact:
            result.problems.append(
                f"stats counted {signups_counted} signups and {mails_counted} sent mails"
                f" for {len(emails)} distinct emails"
            )
        return result

    def close(self) -> None:
        for service in [self.web, self.stats, *self.mailers]:
            service.kill()
        self.smtp.stop()


def _in_background(action: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


def mailer_kill9(stack: Stack, signups: int) -> Result:
    """kill -9 of a mailer, repeatedly, while signups flow; a fresh one replaces it each time."""
    kills = 0
    sender = _in_background(lambda: stack.send(signups))
    while sender.is_alive() and kills < 3:
        time.sleep(1.0)
        victim = stack.mailers.pop(0)
        victim.kill()
        kills += 1
        stack.mailers.append(stack.start_mailer())
    sender.join()
    return stack.result("mailer_kill9", window=kills * MAILER_THREADS)


def stats_kill9(stack: Stack, signups: int) -> Result:
    """kill -9 of the stats runner mid-batch, then a restart."""
    sender = _in_background(lambda: stack.send(signups))
    time.sleep(1.5)
    stack.stats.kill()
    time.sleep(1)
    stack.stats = stack.start_stats()
    sender.join()
    return stack.result("stats_kill9", window=0)


def broker_restart(stack: Stack, signups: int) -> Result:
    """RabbitMQ restarted mid-load: refused signups are 503s, every 202 gets its mail."""
    sender = _in_background(lambda: stack.send(signups))
    time.sleep(1.5)
    stack.broker.restart()
    sender.join()
    # Messages in flight to a mailer when the broker went away come back: the sent-store
    # catches those already mailed, except a send whose store write was cut off.
    return stack.result("broker_restart", window=len(stack.mailers) * MAILER_THREADS)


def smtp_down(stack: Stack, signups: int) -> Result:
    """The SMTP server goes away for a while, then comes back: retries deliver everything."""
    sender = _in_background(lambda: stack.send(signups))
    time.sleep(1)
    stack.smtp.stop()
    time.sleep(3)
    stack.smtp.start()
    sender.join()
    return stack.result("smtp_down", window=0)


def poison_message(stack: Stack, signups: int) -> Result:
    """A message that can never be handled in the middle of the stream: parked, the rest flows."""
    sender = _in_background(lambda: stack.send(signups))
    connection = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    connection.channel().basic_publish("offload.events", "signup.created.high", b"\x00 not an envelope")
    connection.close()
    sender.join()
    result = stack.result("poison_message", window=0)
    parked = ready_count(stack.amqp_url, "mailer.signups.high.parked")
    if parked != 1:
        result.problems.append(f"the poison message was parked {parked} times, not once")
    return result


def memory_alarm(stack: Stack, signups: int) -> Result:
    """RabbitMQ's memory alarm for a while (publishers blocked): the web answers 503 with
    Retry-After within its confirm timeout, never a hang and never a 202; then recovers."""
    sender = _in_background(lambda: stack.send(signups))
    time.sleep(1)
    stack.broker.ctl("set_vm_memory_high_watermark", "0")
    false_202, slow = 0, 0
    try:
        time.sleep(1)  # the alarm reaches every connection
        for i in range(5):
            started = time.monotonic()
            body = {"name": "Alarm", "email": f"alarm{i}@example.com", "fruit": "kiwi"}
            response = requests.post(stack.web.url + "/api/v1/signups", json=body, timeout=30)
            if response.status_code == 202:
                false_202 += 1
                stack.accepted.add(response.json()["id"])
            elif response.status_code != 503 or "Retry-After" not in response.headers:
                false_202 += 1  # any other answer is as wrong: report it the same way
            # OFFLOAD_CONFIRM_TIMEOUT is 2 s: an answer much later than that is a hang.
            slow += time.monotonic() - started > 6
    finally:
        stack.broker.ctl("set_vm_memory_high_watermark", "0.4")
    sender.join()
    result = stack.result("memory_alarm", window=0)
    result.false_202 = false_202 + slow
    return result


def scale_down(stack: Stack, signups: int) -> Result:
    """The autoscaler's local target scales the mailers 3 → 1 while they work: the stopped
    ones get SIGTERM, finish their in-flight sends and leave the rest queued."""
    from offload_autoscaler.targets import LocalProcessPool  # the autoscaler's own local target

    for mailer in stack.mailers:
        mailer.terminate()
    stack.mailers = []
    pool = LocalProcessPool(
        [sys.executable, "-m", "offload_mailer.main"],
        {**stack.mailer_env, "OFFLOAD_MAILER_STATUS_PORT": "0", "OFFLOAD_SMTP_TIMEOUT": "5"},
    )
    try:
        pool.scale(3)
        # Scale down mailers that are working, not ones still starting (tested in the core).
        consuming = lambda: stack.consumers("mailer.signups.high") == 3  # noqa: E731
        wait_for(consuming, timeout=60, what="three mailers consuming")
        sender = _in_background(lambda: stack.send(signups))
        time.sleep(1)
        pool.scale(1)
        stopped = list(pool.stopping)
        sender.join()
        result = stack.result("scale_down", window=0)
        # A SIGTERMed runner must drain and exit 0 (its grace period is over long before now).
        codes = [p.poll() for p in stopped]
        if codes != [0, 0]:
            result.problems.append(f"the two stopped mailers exited with {codes}, not [0, 0]")
        return result
    finally:
        pool.close()


SCENARIOS: dict[str, Callable[[Stack, int], Result]] = {
    "mailer_kill9": mailer_kill9,
    "stats_kill9": stats_kill9,
    "broker_restart": broker_restart,
    "smtp_down": smtp_down,
    "poison_message": poison_message,
    "memory_alarm": memory_alarm,
    "scale_down": scale_down,
}


def run_scenario(name: str, broker: PrivateBroker, redis_url: str, workdir: Path, signups: int) -> Result:
    redis.Redis.from_url(redis_url).flushdb()
    scenario_dir = workdir / name
    scenario_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(broker, redis_url, scenario_dir)
    try:
        wait_for(lambda: requests.get(stack.web.url + "/readyz", timeout=2).ok, timeout=30, what="web ready")
        return SCENARIOS[name](stack, signups)
    finally:
        stack.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--signups", type=int, default=300)
    args = parser.parse_args()
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    args.scenarios = args.scenarios or list(SCENARIOS)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="offload-chaos-") as workdir:
        broker = PrivateBroker(Path(workdir) / "rabbitmq")
        broker.start()
        redis_server = PrivateRedis(Path(workdir)).start()
        try:
            for name in args.scenarios:
                result = run_scenario(name, broker, redis_server.url, Path(workdir), args.signups)
                print(result.line(), flush=True)
                failed += not result.passed
        finally:
            redis_server.stop()
            broker.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
