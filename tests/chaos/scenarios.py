"""Chaos scenarios: the whole local stack under faults, judged at the edges.

Each scenario starts a private broker vhost, the web, two mailers (Redis sent-store), the
stats runner and a real SMTP server (aiosmtpd) that keeps every copy it receives. Clients
send a paced, bounded workload of signups (each to an address of its own) and page views;
a 503 is retried after its Retry-After, with the same Idempotency-Key when the answer says
the signup may have reached the broker. Each fault waits until the work it targets is in
flight, and records what it found. The run ends when every queue of the topology is
settled, or fails at its deadline with the depths. Then `chaos_verdict.verdict` judges it:

    chaos <scenario>: accepted=… refused=… delivered=… duplicates=… lost=… strays=… window=… …

A mailer is never killed blind: its link to the broker is stalled first (what it sends to
the broker is swallowed by a proxy), so its sent mails cannot be acknowledged; once it has
sent at least one mail it cannot acknowledge, it is frozen (SIGSTOP), the mails in the
duplicate window are listed (accepted by the SMTP server on its connections, not in the
sent-store), and it is killed (SIGKILL). Its redelivered messages then test the sent-store
for certain, and a duplicate outside the listed window fails the run.

`python -m tests.chaos.scenarios [--signups N] [--variant V] [scenario ...]` (make chaos)
runs them; tests/chaos/test_scenarios.py runs them with small workloads, and the negative controls
with a mechanism switched off (tests.chaos.broken).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import os
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import redis
import requests

from offload_core.topology import (
    STACK_QUEUES,
    Topology,
    WorkQueue,
    delay_queue_name,
    routing_key,
    stack_topology,
    topic_matches,
)
from offload_mailer.config import MailerConfig
from offload_stats.runner_main import QUEUES as STATS_QUEUES
from offload_testkit import sent_window
from offload_testkit.amqp import wait_for
from offload_testkit.rabbitmq import PrivateBroker
from offload_testkit.rabbitmq_cluster import PrivateCluster
from offload_testkit.redis_server import PrivateRedis
from offload_testkit.signup_load import Answer, send_patiently
from offload_testkit.smtp import SmtpSink
from offload_testkit.stack import Service, start_mailer, start_stats_runner, start_web
from offload_testkit.tcp_proxy import TcpProxy
from tests.chaos import broken
from tests.chaos.verdict import Fault, Ledger, Observation, Policy, Result, Window, verdict

MAILER_THREADS = 4


def _consumed_by(queues: tuple[str, ...], key: str) -> WorkQueue:
    """The work queue among `queues` that a message with routing key `key` reaches."""
    return next(
        q for q in STACK_QUEUES if q.name in queues and any(topic_matches(p, key) for p in q.bindings)
    )


# The clients' signups go to the high lane; where they and the mailer's events wait, by the topology.
MAILER_QUEUE = _consumed_by(MailerConfig().queues, routing_key("signup.created", "high"))
STATS_QUEUE = _consumed_by(STATS_QUEUES, routing_key("mail.sent", "normal"))
IN_MAILER_QUEUE = f"unacked in {MAILER_QUEUE.name}"
DELAY_TIERS = (0.2, 0.5, 1.0)
FRUITS = ("kiwi", "pear", "mango")
AGENTS = tuple(f"chaos-client/{n}" for n in range(3))
# A run must settle within this after its load: a mail whose sender was killed inside the
# window is resent only when the dead mailer's claim expires (3 x SMTP timeout + 5 s).
FINISH_SECONDS = 120.0
PATIENCE_SECONDS = 90.0  # how long a client retries a refused signup before it gives up
FAULT_SECONDS = 30.0  # how long a fault may wait for the work it targets
SMTP_SECONDS = 0.15  # the sink's time per message


@dataclasses.dataclass
class Runner:
    """A runner process and, for mailers and stats, the proxy its broker traffic goes through."""

    service: Service
    proxy: TcpProxy | None = None

    def close(self) -> None:
        self.service.kill()
        if self.proxy is not None:
            self.proxy.close()


class Stack:
    def __init__(
        self,
        broker: PrivateBroker | PrivateCluster,
        redis_url: str,
        workdir: Path,
        *,
        mailer_variant: str | None = None,
        stats_variant: str | None = None,
        extra_env: dict[str, str] | None = None,
        patience: float = PATIENCE_SECONDS,
        finish_seconds: float = FINISH_SECONDS,
    ) -> None:
        self.broker = broker
        self.patience = patience
        self.finish_seconds = finish_seconds
        self.workdir = workdir
        self.redis = redis.Redis.from_url(redis_url)
        self.vhost = broker.create_vhost()
        self.amqp_url = broker.amqp_url(self.vhost)
        self.run_id = os.urandom(3).hex()
        # Each send takes a while, as a real relay's does: the mailers hold every signup
        # unacknowledged for at least this long, so the broker's figures (sampled every
        # 500 ms) see work in flight whenever the load runs.
        self.smtp = SmtpSink(delay=SMTP_SECONDS).start()
        self.env = {
            "OFFLOAD_AMQP_URL": self.amqp_url,
            "OFFLOAD_DELAY_TIERS": ",".join(str(t) for t in DELAY_TIERS),
            "OFFLOAD_MAX_ATTEMPTS": "30",
            "OFFLOAD_RECONNECT_MAX_DELAY": "1",
            "OFFLOAD_CONFIRM_TIMEOUT": "2",
            "OFFLOAD_LOG_FORMAT": "text",
            **(extra_env or {}),
        }
        self.topology: Topology = stack_topology(
            DELAY_TIERS, int(self.env.get("OFFLOAD_DELIVERY_LIMIT", "10"))
        )
        self.mailer_env = {
            "OFFLOAD_WORKER_THREADS": str(MAILER_THREADS),
            "OFFLOAD_PREFETCH": "8",
            **self.env,  # a scenario's own settings win
            "OFFLOAD_MAILER_BACKEND": "smtp",
            "OFFLOAD_SMTP_PORT": str(self.smtp.port),
            "OFFLOAD_SMTP_TIMEOUT": "2",
            "OFFLOAD_MAILER_STORE_URL": redis_url,
        }
        self.mailer_argv = broken.argv(mailer_variant) if mailer_variant else None
        self.stats_argv = broken.argv(stats_variant) if stats_variant else None
        self.stats_db = workdir / "stats.db"
        self.web = start_web(self.env | {"OFFLOAD_WEB_RETRY_AFTER": "1"}, workdir)
        self.mailers = [self.start_mailer() for _ in range(2)]
        self.stats = self.start_stats()
        self.ledger = Ledger()
        self.faults: list[Fault] = []
        self.window = Window()
        self.accepted_at: list[tuple[float, float]] = []  # (asked, answered) of every 202, monotonic
        self._lock = threading.Lock()
        self._starting: list[threading.Thread] = []
        self.cleanups: list[Callable[[], None]] = []  # run by close(), after the verdict

    # -- processes -------------------------------------------------------------------------

    def _proxied(self) -> tuple[TcpProxy | None, str]:
        if isinstance(self.broker, PrivateCluster):
            return None, self.amqp_url  # every node's URL: a runner moves on when its node dies
        proxy = TcpProxy("127.0.0.1", self.broker.amqp_port)
        return proxy, proxy.route(self.amqp_url)

    def start_mailer(self) -> Runner:
        proxy, url = self._proxied()
        env = self.mailer_env | {"OFFLOAD_AMQP_URL": url}
        service = start_mailer(env, self.workdir, name=f"mailer-{time.monotonic_ns()}", argv=self.mailer_argv)
        return Runner(service, proxy)

    def start_stats(self) -> Runner:
        proxy, url = self._proxied()
        env = self.env | {
            "OFFLOAD_AMQP_URL": url,
            "OFFLOAD_STATS_STORE_URL": f"sqlite:///{self.stats_db}",
            "OFFLOAD_STATS_BATCH_SIZE": "50",
            "OFFLOAD_STATS_BATCH_WAIT": "0.2",
        }
        service = start_stats_runner(
            env, self.workdir, name=f"stats-{time.monotonic_ns()}", argv=self.stats_argv
        )
        return Runner(service, proxy)

    def replace_mailer(self, on_crash: Callable[[], None] | None = None) -> None:
        """Start a new mailer in the background, as a Deployment would: the load goes on
        meanwhile, and one that dies while starting is started again (`on_crash` hears of it)."""

        def start() -> None:
            for _ in range(20):
                try:
                    runner = self.start_mailer()
                except RuntimeError:  # died before it was ready
                    if on_crash is not None:
                        on_crash()
                    continue
                with self._lock:
                    self.mailers.append(runner)
                return

        thread = threading.Thread(target=start, daemon=True)
        thread.start()
        self._starting.append(thread)

    def close(self) -> None:
        for cleanup in self.cleanups:
            cleanup()
        for thread in self._starting:
            thread.join(60)
        self.web.kill()
        for runner in [self.stats, *self.mailers]:
            runner.close()
        self.smtp.stop()

    # -- the workload --------------------------------------------------------------------

    def send(self, count: int, rate: float, first: int = 0) -> None:
        """`count` signups at `rate` per second (and a page view each), with retries on 503."""
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            for i in range(first, first + count):
                pool.submit(self._one_signup, i, started + (i - first) / rate)

    def address(self, i: int) -> str:
        return f"c{i}-{self.run_id}@example.com"

    def _record_request(self, path: str, agent: str, status: int) -> None:
        with self._lock:
            self.ledger.requests[path, agent, f"{status // 100}xx"] += 1

    def _unexpected(self, what: str) -> None:
        with self._lock:
            self.ledger.unexpected.append(what)

    def send_same_address(self, i: int, clients: int) -> None:
        """`clients` more signups for the address of workload signup `i`, all at once, each a
        signup of its own (its own idempotency key)."""
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            for client in range(clients):
                pool.submit(self._one_signup, i, started, client=client)

    def _one_signup(self, i: int, at: float, name: str | None = None, client: int | None = None) -> None:
        time.sleep(max(0.0, at - time.monotonic()))  # the workload's pace
        address, fruit, agent = self.address(i), FRUITS[i % len(FRUITS)], AGENTS[i % len(AGENTS)]
        body = {"name": name or f"Chaos {i}", "email": address, "fruit": fruit}

        def record(answer: Answer) -> None:
            # As each answer comes: a fault's effect (refusals under the alarm) is watched live.
            self._record_request("/api/v1/signups", agent, answer.status)
            if answer.answered - answer.asked > 8:
                took = answer.answered - answer.asked
                self._unexpected(f"signup {i}: answered {answer.status} after {took:.1f}s")
            if answer.status == 503:
                with self._lock:
                    self.ledger.refused += 1
                    self.ledger.uncertain += answer.uncertain

        key = f"{self.run_id}-{i}" if client is None else f"{self.run_id}-{i}-client-{client}"
        result = send_patiently(
            self.web.url,
            body,
            key,
            patience=self.patience,
            headers={"User-Agent": agent},
            on_answer=record,
        )
        with self._lock:
            if result.signup_id is not None and address in self.ledger.accepted:
                self.ledger.repeated[address] += 1
            elif result.signup_id is not None:
                self.ledger.accepted[address] = result.signup_id
                self.ledger.fruits[address] = fruit
                self.accepted_at.append((result.answers[-1].asked, result.answers[-1].answered))
            elif result.gave_up:
                self.ledger.gave_up.append(address)
        if result.unexpected is not None:
            self._unexpected(f"signup {i}: {result.unexpected}")
        if result.signup_id is None:
            return
        try:
            page = requests.get(self.web.url + "/", headers={"User-Agent": agent}, timeout=10)
        except requests.RequestException as exc:
            self._unexpected(f"page {i}: no answer ({type(exc).__name__})")
            return
        self._record_request("/", agent, page.status_code)

    # -- the broker, seen from outside ------------------------------------------------------

    def queues(self) -> dict[str, dict]:
        url = f"{self.broker.management_url}/api/queues/{self.vhost}"
        return {q["name"]: q for q in requests.get(url, auth=("guest", "guest"), timeout=5).json()}

    def unacked(self, queue: str) -> int:
        return int(self.queues().get(queue, {}).get("messages_unacknowledged", 0))

    def all_queues(self) -> list[str]:
        names = []
        for queue in self.topology.queues:
            names += [queue.name, queue.parking_queue]
            names += [delay_queue_name(queue.name, delay) for delay in self.topology.delay_tiers]
        return names

    def depths(self) -> dict[str, tuple[int, int]]:
        found = self.queues()
        return {
            name: (
                int(found.get(name, {}).get("messages_ready", 0)),
                int(found.get(name, {}).get("messages_unacknowledged", 0)),
            )
            for name in self.all_queues()
        }

    def counters(self) -> dict[tuple[str, str], int]:
        if not self.stats_db.exists():
            return {}
        with contextlib.closing(sqlite3.connect(self.stats_db, timeout=30)) as db:
            return {(f, k): v for f, k, v in db.execute("SELECT family, key, value FROM counters")}

    def counted_events(self) -> int:
        with contextlib.closing(sqlite3.connect(self.stats_db, timeout=30)) as db:
            return int(db.execute("SELECT count(*) FROM processed").fetchone()[0])

    def dropped_reports(self) -> int:
        text = requests.get(self.web.status_url + "/metrics", timeout=5).text
        dropped = 0.0
        for line in text.splitlines():
            if line.startswith("offload_web_analytics_dropped_total"):
                dropped += float(line.split()[-1])
            elif line.startswith("offload_publisher_dropped_total"):
                dropped += 500 * float(line.split()[-1])  # a whole batch: at most MAX_BATCH reports
        return int(dropped)

    # -- faults ----------------------------------------------------------------------------

    def in_flight(self, queue: str, load: threading.Thread) -> int:
        """Wait until `queue` holds unacknowledged messages while the load runs; 0 if it never did."""
        deadline = time.monotonic() + FAULT_SECONDS
        while load.is_alive() and time.monotonic() < deadline:
            held = self.unacked(queue)
            if held:
                return held
            time.sleep(0.05)
        return 0

    def kill_mailer(self, load: threading.Thread, *, drain: bool = False) -> Fault:
        """Stall a working mailer's broker link until it holds a sent mail it cannot acknowledge,
        (with `drain`: SIGTERM it and wait until it is draining), freeze it, list the mails in
        the duplicate window, SIGKILL it, start a replacement."""
        victim = self._take_mailer()
        pid = victim.service.pid
        if not self.in_flight(MAILER_QUEUE.name, load):
            with self._lock:
                self.mailers.append(victim)
            return Fault("mailer kill -9", 0, "the load was over before a mailer held work")
        assert victim.proxy is not None
        stalled_at = time.monotonic()
        victim.proxy.swallow_to_server = True

        def trapped() -> list[str]:
            # Looked up each time: a new mailer opens its SMTP connections with its first sends.
            ports = sent_window.smtp_ports(pid, self.smtp.port)
            mine = {
                sent_window.signup_id(r.message_id)
                for r in self.smtp.snapshot()
                if r.peer_port in ports and r.at > stalled_at
            }
            return sorted(sent_window.recorded(self.redis, mine))

        found = _wait_quietly(trapped, FAULT_SECONDS)
        detail = "sent, unacknowledged"
        if drain and found:
            victim.service.process.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]  # started services always have a process
            draining = _wait_quietly(lambda: "stop requested" in victim.service.process.logs(), 10)
            detail += ", killed while draining" if draining else ", drain never began"
            if not draining:
                found = []
        os.kill(pid, signal.SIGSTOP)
        try:
            self.window = self.window | Window(sent_window.in_window(pid, self.smtp, self.redis))
        finally:
            victim.close()  # SIGKILL (a stopped process dies of it too) and drop its connections
        self.replace_mailer()
        return Fault("mailer kill -9" + (" mid-drain" if drain else ""), len(found), detail)

    def _take_mailer(self) -> Runner:
        def take() -> Runner | None:
            with self._lock:
                return self.mailers.pop(0) if self.mailers else None

        victim = wait_for(take, timeout=60, what="a running mailer to kill")
        assert isinstance(victim, Runner)
        return victim

    def kill_stats(self, load: threading.Thread) -> Fault:
        """Stall the stats runner's broker link until it has counted events it cannot
        acknowledge, then SIGKILL it mid-batch and start a new one."""
        victim = self.stats
        if not self.in_flight(STATS_QUEUE.name, load):
            return Fault("stats kill -9", 0, "the load was over before stats held work")
        assert victim.proxy is not None
        before = self.counted_events()
        victim.proxy.swallow_to_server = True
        counted = _wait_quietly(lambda: max(0, self.counted_events() - before), FAULT_SECONDS) or 0
        victim.close()
        self.stats = self.start_stats()
        return Fault("stats kill -9", counted, "events counted, unacknowledged")

    def restart_broker(self, load: threading.Thread) -> Fault:
        """Restart RabbitMQ once mailers hold work: its connections drop mid-delivery."""
        assert isinstance(self.broker, PrivateBroker)
        held = self.in_flight(MAILER_QUEUE.name, load)
        if held:
            self.broker.restart()
        return Fault("broker restart", held, IN_MAILER_QUEUE)

    def kill_leader_node(self, load: threading.Thread) -> Fault:
        """kill -9 of the cluster node that leads the mailer queue, once mailers hold work;
        it stays down until the verdict, so two nodes must carry the rest of the run."""
        cluster = self.broker
        assert isinstance(cluster, PrivateCluster)
        held = self.in_flight(MAILER_QUEUE.name, load)
        if not held:
            return Fault("leader node kill -9", 0, IN_MAILER_QUEUE)
        before = cluster.queue(self.vhost, MAILER_QUEUE.name)
        leader, members = before["leader"], before.get("members", [])
        clients = cluster.connections_on(leader)
        refused_before = self.ledger.refused
        cluster.kill(leader)
        killed_at = time.monotonic()

        def new_leader() -> str | None:
            found = cluster.queue(self.vhost, MAILER_QUEUE.name).get("leader")
            return found if found and found != leader else None

        elected = _wait_quietly(new_leader, FAULT_SECONDS)
        # The web's failover as its clients saw it: the first 202 asked after the kill.
        recovered = _wait_quietly(
            lambda: min((answered for asked, answered in self.accepted_at if asked > killed_at), default=0.0),
            FAULT_SECONDS,
        )
        failover = f"{recovered - killed_at:.1f}s to a 202" if recovered else "no 202 since"
        detail = (
            f"{IN_MAILER_QUEUE}, {len(members)} members, {clients} client connections on it, "
            f"leader {'moved' if elected else 'lost'}, "
            f"{failover}, {self.ledger.refused - refused_before} refusals by then"
        )
        return Fault("leader node kill -9", held, detail)

    # -- the end ---------------------------------------------------------------------------

    def settled(self, policy: Policy) -> bool:
        copies = self.smtp.copies_by_recipient()
        if any(copies[address] == 0 for address in self.ledger.accepted):
            return False
        if any(d != (policy.parked.get(q, 0), 0) for q, d in self.depths().items()):
            return False
        counters = self.counters()
        reports = sum(self.ledger.requests.values()) - self.dropped_reports()
        return counters.get(("requests", "total"), 0) >= reports and counters.get(
            ("mails", "sent"), 0
        ) >= len(self.ledger.accepted)

    def finish(self, scenario: str, policy: Policy) -> Result:
        # Settled twice, a second apart: the management API samples every 500 ms, so the
        # second look is newer than the first.
        deadline = time.monotonic() + self.finish_seconds
        streak = 0
        while time.monotonic() < deadline and streak < 2:
            streak = streak + 1 if self.settled(policy) else 0
            time.sleep(1.0 if streak else 0.25)
        observation = Observation(
            copies=dict(self.smtp.copies_by_recipient()),
            counters=self.counters(),
            dropped_reports=self.dropped_reports(),
            depths=self.depths(),
            finished=streak >= 2,
            window=self.window,
            faults=tuple(self.faults),
        )
        return verdict(scenario, policy, self.ledger, observation)


Value = TypeVar("Value")


def _wait_quietly(predicate: Callable[[], Value], timeout: float) -> Value:
    """The predicate's first truthy value within `timeout`, else its last (falsy) value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


@contextlib.contextmanager
def _load(stack: Stack, signups: int, rate: float) -> Iterator[threading.Thread]:
    thread = threading.Thread(target=stack.send, args=(signups, rate), daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        thread.join()


# -- scenarios: each runs the load, lands its faults, and names what the verdict allows ----------


def mailer_kill9(stack: Stack, signups: int, rate: float) -> Policy:
    """kill -9 of a mailer holding sent mails it has not acknowledged, three times."""
    with _load(stack, signups, rate) as load:
        for _ in range(3):
            stack.faults.append(stack.kill_mailer(load))
    return Policy()


SAME_ADDRESS_CLIENTS = 20


def same_address_kill9(stack: Stack, signups: int, rate: float) -> Policy:
    """Twenty clients sign the load's first address up at once (its own signup and 19 more)
    while mailers are killed -9 holding sent, unacknowledged mails: the address gets one
    welcome (two only inside the duplicate window), the other signups are suppressed."""
    with _load(stack, signups, rate) as load:
        stack.send_same_address(0, SAME_ADDRESS_CLIENTS - 1)
        for _ in range(2):
            stack.faults.append(stack.kill_mailer(load))
    return Policy()


def stats_kill9(stack: Stack, signups: int, rate: float) -> Policy:
    """kill -9 of the stats runner holding counted events it has not acknowledged."""
    with _load(stack, signups, rate) as load:
        stack.faults.append(stack.kill_stats(load))
    return Policy()


def broker_restart(stack: Stack, signups: int, rate: float) -> Policy:
    """RabbitMQ restarted while mailers hold work: refusals are 503s, retried; one mail each."""
    with _load(stack, signups, rate) as load:
        stack.faults.append(stack.restart_broker(load))
    return Policy(broker_faulted=True)


def smtp_down(stack: Stack, signups: int, rate: float) -> Policy:
    """The SMTP server goes away while mails are being sent, until the mailers have retried."""
    with _load(stack, signups, rate) as load:
        held = stack.in_flight(MAILER_QUEUE.name, load)
        if held:
            stack.smtp.stop()
            delays = [delay_queue_name(MAILER_QUEUE.name, d) for d in DELAY_TIERS]
            retried = _wait_quietly(
                lambda: sum(stack.queues().get(q, {}).get("messages", 0) for q in delays), FAULT_SECONDS
            )
            stack.smtp.start()
            held = held if retried else 0
        stack.faults.append(Fault("smtp server down", held, IN_MAILER_QUEUE))
    return Policy()


def memory_alarm(stack: Stack, signups: int, rate: float) -> Policy:
    """RabbitMQ's memory alarm while signups flow: the web answers 503 with Retry-After
    within its confirm timeout, never a hang and never a 202; then recovers.

    Two thirds of the signups flow until the mailers hold work; the alarm goes on and the
    last third is sent under it, so the alarm always meets signups being published (a load
    that happened to finish first would test nothing)."""
    half = signups * 2 // 3
    blocked = lifted = 0.0
    with _load(stack, half, rate) as load:
        held = stack.in_flight(MAILER_QUEUE.name, load)
        if held:
            refused_before = stack.ledger.refused
            stack.broker.ctl("set_vm_memory_high_watermark", "0")
            blocked = time.monotonic()  # the alarm is on once the command returned
            under_alarm = threading.Thread(target=stack.send, args=(signups - half, rate, half), daemon=True)
            under_alarm.start()
            try:
                refusing = _wait_quietly(lambda: stack.ledger.refused > refused_before + 2, FAULT_SECONDS)
            finally:
                lifted = time.monotonic()  # the broker cannot confirm again before this
                stack.broker.ctl("set_vm_memory_high_watermark", "0.4")
            under_alarm.join()
            held = held if refusing else 0
        stack.faults.append(Fault("memory alarm", held, IN_MAILER_QUEUE))
    if not blocked:
        stack.send(signups - half, rate, half)  # no alarm: the rest of the load, as it is
    if held:
        # Asked a second after the alarm was on (time for it to reach every connection) and
        # answered 202 before it was lifted: a confirm that could not have happened.
        stack.ledger.false_202 = sum(
            1 for asked, answered in stack.accepted_at if asked > blocked + 1 and answered < lifted
        )
    return Policy(broker_faulted=True)


def scale_down(stack: Stack, signups: int, rate: float) -> Policy:
    """The autoscaler's local target scales the mailers 3 -> 1 while they work: the stopped
    ones get SIGTERM, finish their in-flight sends and exit 0."""
    from offload_autoscaler.targets import LocalProcessPool  # the autoscaler's own local target

    for mailer in stack.mailers:
        mailer.service.terminate()
        mailer.close()
    stack.mailers = []
    pool = LocalProcessPool(
        [sys.executable, "-m", "offload_mailer.main"],
        {**stack.mailer_env, "OFFLOAD_MAILER_STATUS_PORT": "0", "OFFLOAD_SMTP_TIMEOUT": "5"},
    )
    stack.cleanups.append(pool.close)  # the one left works off the backlog until the run settles
    pool.scale(3)
    consumers = lambda: stack.queues().get(MAILER_QUEUE.name, {}).get("consumers", 0) == 3  # noqa: E731
    wait_for(consumers, timeout=60, what="three mailers consuming")
    with _load(stack, signups, rate) as load:
        held = stack.in_flight(MAILER_QUEUE.name, load)
        if held:
            pool.scale(1)
        stack.faults.append(Fault("scale 3 -> 1", held, IN_MAILER_QUEUE))
        stopped = list(pool.stopping)
    codes = [p.wait(30) for p in stopped]
    if codes != [0, 0]:
        stack.ledger.unexpected.append(f"the two stopped mailers exited with {codes}, not [0, 0]")
    return Policy()


def poison_message(stack: Stack, signups: int, rate: float) -> Policy:
    """A signup that kills every mailer that takes it (SIGKILL, tests.chaos.broken), in
    the middle of the stream: the quorum queue's delivery limit parks it, a supervisor
    restarts the mailers as Kubernetes would, and every other signup is mailed once."""
    crashes = 0
    stop = threading.Event()

    def crashed() -> None:
        nonlocal crashes
        crashes += 1

    def supervise() -> None:
        while not stop.is_set():
            for runner in list(stack.mailers):
                if runner.service.process.process.poll() is not None:  # type: ignore[union-attr]  # started services always have a process
                    crashed()
                    runner.close()
                    stack.mailers.remove(runner)
                    stack.replace_mailer(on_crash=crashed)
            time.sleep(0.05)

    supervisor = threading.Thread(target=supervise, daemon=True)
    supervisor.start()
    try:
        with _load(stack, signups, rate) as load:
            stack.in_flight(MAILER_QUEUE.name, load)  # in mid-stream, once mailers hold work
            poison = signups + 1
            stack._one_signup(poison, time.monotonic(), name=broken.POISON_NAME)
            address = stack.address(poison)
            poisoned = stack.ledger.accepted.pop(address, None)
        limit = stack.topology.delivery_limit
        parked = _wait_quietly(
            lambda: stack.queues().get(MAILER_QUEUE.parking_queue, {}).get("messages", 0), FINISH_SECONDS
        )
        stack.faults.append(
            # Each crash is a mailer killed holding the poison: by construction the fault lands
            # on work in flight, and the crash count (not a management sample) is the proof.
            Fault("poison signup", crashes if poisoned and parked else 0, f"mailer crashes, limit {limit}")
        )
        if not poisoned:
            stack.ledger.unexpected.append("the poison signup was not accepted")
        elif crashes < limit:
            stack.ledger.unexpected.append(
                f"the poison signup crashed {crashes} mailers, below the limit {limit}"
            )
        if poisoned:
            # Counted as a signup (stats took it), never mailed: expected in the parking queue.
            stack.ledger.counted_only[address] = FRUITS[poison % len(FRUITS)]
    finally:
        stop.set()
        supervisor.join()
    return Policy(parked={MAILER_QUEUE.parking_queue: 1})


def combined(stack: Stack, signups: int, rate: float) -> Policy:
    """kill -9 of a mailer, kill -9 of stats and a broker restart, in one workload."""
    with _load(stack, signups, rate) as load:
        stack.faults.append(stack.kill_mailer(load))
        stack.faults.append(stack.kill_stats(load))
        stack.faults.append(stack.restart_broker(load))
    return Policy(broker_faulted=True)


def broker_node_kill9(stack: Stack, signups: int, rate: float) -> Policy:
    """A three-node RabbitMQ cluster: kill -9 of the node leading the mailer queue while
    mailers hold work. Replicated quorum queues elect a new leader, clients move to a live
    node; refusals are 503s, retried; nothing lost, one mail each."""
    with _load(stack, signups, rate) as load:
        stack.faults.append(stack.kill_leader_node(load))
    return Policy(broker_faulted=True)


def drain_kill9(stack: Stack, signups: int, rate: float) -> Policy:
    """SIGKILL of a mailer during its graceful drain, while it holds sent, unacknowledged mails."""
    with _load(stack, signups, rate) as load:
        stack.faults.append(stack.kill_mailer(load, drain=True))
    return Policy()


SCENARIOS: dict[str, Callable[[Stack, int, float], Policy]] = {
    "mailer_kill9": mailer_kill9,
    "same_address_kill9": same_address_kill9,
    "stats_kill9": stats_kill9,
    "broker_restart": broker_restart,
    "smtp_down": smtp_down,
    "poison_message": poison_message,
    "memory_alarm": memory_alarm,
    "scale_down": scale_down,
    "combined": combined,
    "drain_kill9": drain_kill9,
    "broker_node_kill9": broker_node_kill9,
}
# Scenarios on a RabbitMQ cluster of their own (three private nodes) instead of the shared node.
CLUSTER_SCENARIOS = {"broker_node_kill9"}
# Scenarios whose mailers must see the poison one at a time: with one thread and prefetch 1 a
# crash takes down no neighbouring signup with it.
SCENARIO_ENV = {
    "poison_message": {
        "mailer": "mailer-crashing",
        "env": {"OFFLOAD_WORKER_THREADS": "1", "OFFLOAD_PREFETCH": "1", "OFFLOAD_DELIVERY_LIMIT": "3"},
    },
}
# Pacing: a load long enough for every fault to land on it, on a busy machine too.
LOAD_SECONDS = 10.0


def run_scenario(
    name: str,
    broker: PrivateBroker,
    redis_url: str,
    workdir: Path,
    signups: int,
    *,
    mailer_variant: str | None = None,
    stats_variant: str | None = None,
    replicated: bool = True,
    patience: float = PATIENCE_SECONDS,
    finish_seconds: float = FINISH_SECONDS,
) -> Result:
    """One scenario, judged. `replicated=False` (cluster scenarios, negative control) leaves
    the mailer queue a single member, its leader, before the load. `patience`: how long a
    client retries a refused signup; `finish_seconds`: how long the run may take to settle."""
    redis.Redis.from_url(redis_url).flushdb()
    variant = mailer_variant or stats_variant or ("" if replicated else "unreplicated")
    workdir.mkdir(parents=True, exist_ok=True)
    scenario_dir = Path(tempfile.mkdtemp(prefix=f"{name}-{variant + '-' if variant else ''}", dir=workdir))

    def run_on(node_or_cluster: PrivateBroker | PrivateCluster) -> Result:
        return _run_on(
            name,
            node_or_cluster,
            redis_url,
            scenario_dir,
            signups,
            mailer_variant=mailer_variant,
            stats_variant=stats_variant,
            replicated=replicated,
            patience=patience,
            finish_seconds=finish_seconds,
        )

    if name not in CLUSTER_SCENARIOS:
        return run_on(broker)
    cluster = PrivateCluster(scenario_dir / "rabbitmq").start()
    try:
        return run_on(cluster)
    finally:
        cluster.stop()


def _run_on(
    name: str,
    broker: PrivateBroker | PrivateCluster,
    redis_url: str,
    scenario_dir: Path,
    signups: int,
    *,
    mailer_variant: str | None,
    stats_variant: str | None,
    replicated: bool,
    patience: float,
    finish_seconds: float,
) -> Result:
    settings = SCENARIO_ENV.get(name, {})
    stack = Stack(
        broker,
        redis_url,
        scenario_dir,
        mailer_variant=mailer_variant or settings.get("mailer"),  # type: ignore[arg-type]  # scenario settings are a loose table
        stats_variant=stats_variant,
        extra_env=settings.get("env"),  # type: ignore[arg-type]  # scenario settings are a loose table
        patience=patience,
        finish_seconds=finish_seconds,
    )
    try:
        wait_for(
            lambda: requests.get(stack.web.status_url + "/readyz", timeout=2).ok, timeout=30, what="web ready"
        )
        # Faults wait for work in flight as the management API reports it: after a broker
        # restart (the previous scenario's) its figures for a new queue take a moment to exist.
        wait_for(
            lambda: "messages_unacknowledged" in stack.queues().get(MAILER_QUEUE.name, {}),
            timeout=30,
            what="the management API's figures for the mailer queue",
        )
        if not replicated:
            assert isinstance(broker, PrivateCluster), "only a cluster's queues have replicas to remove"
            broker.shrink_to_leader(stack.vhost, MAILER_QUEUE.name)
        policy = SCENARIOS[name](stack, signups, signups / LOAD_SECONDS)
        return stack.finish(name, policy)
    finally:
        stack.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--signups", type=int, default=300)
    parser.add_argument(
        "--mailer", choices=sorted(broken.VARIANTS), help="run a broken mailer (negative control)"
    )
    parser.add_argument("--stats", choices=sorted(broken.VARIANTS), help="run a broken stats runner")
    parser.add_argument(
        "--unreplicated",
        action="store_true",
        help="cluster scenarios: the mailer queue keeps only its leader (negative control)",
    )
    args = parser.parse_args()
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    failed = 0
    with tempfile.TemporaryDirectory(prefix="offload-chaos-") as workdir:
        broker = PrivateBroker(Path(workdir) / "rabbitmq")
        broker.start()
        redis_server = PrivateRedis(Path(workdir)).start()
        try:
            for name in args.scenarios or list(SCENARIOS):
                result = run_scenario(
                    name,
                    broker,
                    redis_server.url,
                    Path(workdir),
                    args.signups,
                    mailer_variant=args.mailer,
                    stats_variant=args.stats,
                    replicated=not args.unreplicated,
                )
                print(result.line(), flush=True)
                failed += not result.passed
        finally:
            redis_server.stop()
            broker.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
