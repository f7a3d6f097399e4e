"""Messaging core benchmark: one private broker, one run, core vs raw pika.

Prints `bench <name>: <value> <unit>` and `ratio <name>: <value>` lines:
- confirmed publishes/s, like for like: the core publisher with one caller keeping 500 in
  flight vs raw pika (SelectConnection) keeping 500 in flight; and 8 blocking caller
  threads vs a pika BlockingConnection with a confirm per message (the pattern the core
  replaces), vs raw pika keeping 8 in flight (as many as the 8 callers), and vs the
  pipelined raw pika ceiling;
- no-op consumption msgs/s: the core runner (worker threads, acks via the I/O loop) vs a
  raw pika consume + ack loop, same prefetch. Both clocks stop when the connection has
  closed after the last ack, so every ack has reached the broker.
- the opt-in OFFLOAD_FEWER_SYSCALLS (offload_core.fewer_syscalls): the core publisher and
  runner again with it on, against the same runs with it off.
Goals: pipelined vs confirm-each >= 3, runner vs raw pika >= 0.5, 8 threads vs pipelined
raw pika with 8 in flight >= 0.8. Raw pika and the core's default both run pika as users get
it, one send() per frame.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import threading
import time
from pathlib import Path

import pika

from offload_core.config import CoreConfig
from offload_core.publisher import Publisher
from offload_core.runner import Runner
from offload_core.topology import EVENTS_EXCHANGE, Topology, WorkQueue, declare, routing_key
from offload_testkit.amqp import ready_count
from offload_testkit.messages import signup
from offload_testkit.rabbitmq import PrivateBroker

QUEUE = "bench.work"
TOPOLOGY = Topology((WorkQueue(QUEUE, ("signup.created.*",)),), delay_tiers=(1.0,))


def purge(url: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    connection.channel().queue_purge(QUEUE)
    connection.close()


def bench_core_publisher(config: CoreConfig, count: int, threads: int) -> float:
    publisher = Publisher(config, TOPOLOGY).start()
    assert publisher.wait_ready(10)
    per_thread = count // threads

    def work() -> None:
        for _ in range(per_thread):
            publisher.publish(signup())

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    publisher.close()
    return per_thread * threads / elapsed


def bench_core_pipelined(config: CoreConfig, count: int, window: int = 500) -> float:
    """One caller keeps up to `window` messages in flight (the batch endpoint's pattern)."""
    publisher = Publisher(config, TOPOLOGY).start()
    assert publisher.wait_ready(10)
    started = time.perf_counter()
    for _ in range(count // window):
        futures = [publisher.publish_async(signup()) for _ in range(window)]
        for future in futures:
            future.result(30)
    elapsed = time.perf_counter() - started
    publisher.close()
    return count // window * window / elapsed


def bench_pika_pipelined(url: str, count: int, window: int = 500) -> float:
    """Raw pika, asynchronous: up to `window` unconfirmed publishes in flight, as the core's
    pipelined caller keeps them (the like-for-like baseline of bench_core_pipelined)."""
    from pika.adapters.select_connection import SelectConnection

    state = {"sent": 0, "confirmed": 0, "started": 0.0, "elapsed": 0.0}
    bodies = [(e.to_bytes(), e.properties()) for e in (signup() for _ in range(count))]

    def publish_more(channel) -> None:
        while state["sent"] < count and state["sent"] - state["confirmed"] < window:
            body, properties = bodies[state["sent"]]
            channel.basic_publish(
                EVENTS_EXCHANGE, routing_key("signup.created", "high"), body, properties, mandatory=True
            )
            state["sent"] += 1

    def on_confirm(frame, channel) -> None:
        tag, multiple = frame.method.delivery_tag, frame.method.multiple
        state["confirmed"] = tag if multiple else state["confirmed"] + 1
        if state["confirmed"] >= count:
            state["elapsed"] = time.perf_counter() - state["started"]
            channel.connection.close()
        else:
            publish_more(channel)

    def on_channel(channel) -> None:
        def confirmed_mode(_frame) -> None:
            state["started"] = time.perf_counter()
            publish_more(channel)

        channel.confirm_delivery(lambda frame: on_confirm(frame, channel), callback=confirmed_mode)

    connection = SelectConnection(
        pika.URLParameters(url),
        on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_close_callback=lambda c, _reason: c.ioloop.stop(),
    )
    connection.ioloop.start()
    return count / state["elapsed"]


def bench_pika_confirm_each(url: str, count: int) -> float:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    started = time.perf_counter()
    for _ in range(count):
        envelope = signup()
        channel.basic_publish(
            EVENTS_EXCHANGE,
            routing_key("signup.created", "high"),
            envelope.to_bytes(),
            envelope.properties(),
            mandatory=True,
        )
    elapsed = time.perf_counter() - started
    connection.close()
    return count / elapsed


def fill(config: CoreConfig, count: int) -> None:
    publisher = Publisher(config, TOPOLOGY).start()
    assert publisher.wait_ready(10)
    futures = [publisher.publish_async(signup()) for _ in range(count)]
    for f in futures:
        f.result(30)
    publisher.close()


def bench_core_runner(config: CoreConfig, count: int) -> float:
    fill(config, count)
    done = threading.Semaphore(0)
    runner = Runner(config, TOPOLOGY, {QUEUE: lambda _m: done.release()})
    thread = threading.Thread(target=runner.run, kwargs={"install_signal_handlers": False})
    started = time.perf_counter()
    thread.start()
    for _ in range(count):
        done.acquire()
    # Handled is not acknowledged: the clock stops once the runner has drained and closed
    # its connection, which the broker answers only after it processed every ack.
    runner.stop()
    thread.join()
    elapsed = time.perf_counter() - started
    assert ready_count(config.amqp_url, QUEUE) == 0
    return count / elapsed


def bench_pika_consume(config: CoreConfig, count: int) -> float:
    fill(config, count)
    connection = pika.BlockingConnection(pika.URLParameters(config.amqp_url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=config.prefetch)
    started = time.perf_counter()
    for seen, (method, _props, _body) in enumerate(channel.consume(QUEUE), start=1):
        channel.basic_ack(method.delivery_tag)
        if seen == count:
            break
    channel.cancel()
    connection.close()  # as for the runner: the close completes after the last ack
    elapsed = time.perf_counter() - started
    return count / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--publish-count", type=int, default=4000)
    parser.add_argument("--consume-count", type=int, default=5000)
    parser.add_argument("--prefetch", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="offload-bench-") as workdir:
        broker = PrivateBroker(Path(workdir))
        broker.start()
        try:
            url = broker.amqp_url(broker.create_vhost("bench"))
            config = dataclasses.replace(
                CoreConfig(), amqp_url=url, prefetch=args.prefetch, worker_threads=4, confirm_timeout=30
            )
            declare(url, TOPOLOGY)
            core_pub = bench_core_publisher(config, args.publish_count, threads=8)
            purge(url)
            core_pipe = bench_core_pipelined(config, args.publish_count * 2)
            purge(url)
            pika_pub = bench_pika_confirm_each(url, args.publish_count // 4)
            purge(url)
            pika_pipe = bench_pika_pipelined(url, args.publish_count * 2)
            purge(url)
            # As many in flight as the core's 8 callers keep: the like-for-like baseline.
            pika_window_8 = bench_pika_pipelined(url, args.publish_count, window=8)
            purge(url)
            core_run = bench_core_runner(config, args.consume_count)
            pika_run = bench_pika_consume(config, args.consume_count)
            # The opt-in, last: the publisher it builds switches the process over.
            fewer = dataclasses.replace(config, fewer_syscalls=True)
            fewer_pub = bench_core_publisher(fewer, args.publish_count, threads=8)
            purge(url)
            fewer_pipe = bench_core_pipelined(fewer, args.publish_count * 2)
            purge(url)
            fewer_run = bench_core_runner(fewer, args.consume_count)
            assert ready_count(url, QUEUE) == 0
        finally:
            broker.stop()
    print(f"bench core_publisher_8_threads: {core_pub:.0f} msgs/s")
    print(f"bench core_publisher_pipelined: {core_pipe:.0f} msgs/s")
    print(f"bench pika_publish_confirm_each: {pika_pub:.0f} msgs/s")
    print(f"bench pika_publish_pipelined: {pika_pipe:.0f} msgs/s")
    print(f"ratio core_publisher_pipelined_vs_pika_pipelined: {core_pipe / pika_pipe:.2f}")
    print(f"ratio core_publisher_pipelined_vs_confirm_each: {core_pipe / pika_pub:.2f}")
    print(f"ratio core_publisher_8_threads_vs_confirm_each: {core_pub / pika_pub:.2f}")
    print(f"bench pika_publish_pipelined_8_in_flight: {pika_window_8:.0f} msgs/s")
    print(f"ratio core_publisher_8_threads_vs_pika_pipelined: {core_pub / pika_pipe:.2f}")
    print(f"ratio core_publisher_8_threads_vs_pika_8_in_flight: {core_pub / pika_window_8:.2f}")
    print(f"bench core_runner_noop: {core_run:.0f} msgs/s")
    print(f"bench pika_consume_ack_noop: {pika_run:.0f} msgs/s")
    print(f"ratio core_runner_vs_raw_pika: {core_run / pika_run:.2f}")
    print(f"bench core_publisher_8_threads_fewer_syscalls: {fewer_pub:.0f} msgs/s")
    print(f"bench core_publisher_pipelined_fewer_syscalls: {fewer_pipe:.0f} msgs/s")
    print(f"bench core_runner_noop_fewer_syscalls: {fewer_run:.0f} msgs/s")
    print(f"ratio fewer_syscalls_vs_default_publisher_8_threads: {fewer_pub / core_pub:.2f}")
    print(f"ratio fewer_syscalls_vs_default_publisher_pipelined: {fewer_pipe / core_pipe:.2f}")
    print(f"ratio fewer_syscalls_vs_default_runner: {fewer_run / core_run:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
