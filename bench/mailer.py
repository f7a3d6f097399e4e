"""Mailer benchmark: one private broker, an SMTP sink process, the real mailer process.

- emails/s of one runner process (defaults: 4 worker threads) draining a backlog;
- SMTP connection reuse vs a new connection per message (the backend alone);
- time-on-queue p50/p99 while signups arrive at half the measured capacity.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time

import requests
from common import histogram_quantile, metric_value, private_broker

from offload_core.config import CoreConfig
from offload_core.envelope import Envelope
from offload_core.publisher import Publisher
from offload_core.topology import stack_topology
from offload_mailer.backends import SmtpBackend
from offload_mailer.compose import compose
from offload_mailer.config import MailerConfig
from offload_testkit.amqp import wait_for
from offload_testkit.messages import signup
from offload_testkit.processes import ServiceProcess, free_port


def numbered_signup(i: int) -> Envelope:
    return signup(name=f"P{i}", email=f"p{i}@example.com")


def sent(status_url: str) -> float:
    text = requests.get(status_url + "/metrics", timeout=5).text
    return metric_value(text, "offload_mailer_emails_total", 'outcome="sent"')


def backend_rate(config: MailerConfig, count: int, reuse: bool) -> float:
    emails = [
        compose(f"id{i}", numbered_signup(i).data, mail_from=config.mail_from, domain="bench")
        for i in range(count)
    ]
    backend = SmtpBackend(config)
    started = time.perf_counter()
    for email in emails:
        if not reuse:
            backend = SmtpBackend(config)
        backend.send(email)
        if not reuse:
            backend.close()
    elapsed = time.perf_counter() - started
    backend.close()
    return count / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--paced-seconds", type=int, default=15)
    args = parser.parse_args()
    smtp_port = free_port()
    sink = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{smtp_port}",
            "-c",
            "aiosmtpd.handlers.Sink",
        ]
    )
    try:
        with private_broker() as (broker, workdir):
            url = broker.amqp_url(broker.create_vhost("bench"))
            config = dataclasses.replace(CoreConfig(), amqp_url=url, confirm_timeout=30)
            publisher = Publisher(config, stack_topology()).start()
            assert publisher.wait_ready(10)
            futures = [publisher.publish_async(numbered_signup(i)) for i in range(args.count)]
            for f in futures:
                f.result(60)
            status_port = free_port()
            mailer = ServiceProcess(
                [sys.executable, "-m", "offload_mailer.main"],
                env={"OFFLOAD_AMQP_URL": url, "OFFLOAD_MAILER_BACKEND": "smtp",
                     "OFFLOAD_SMTP_PORT": str(smtp_port), "OFFLOAD_MAILER_STORE_URL": f"sqlite:///{workdir}/sent.db",
                     "OFFLOAD_LOG_LEVEL": "WARNING", "OFFLOAD_MAILER_STATUS_PORT": str(status_port)},
                log_path=workdir / "mailer.log",
                health_url=f"http://127.0.0.1:{status_port}/readyz",
            )  # fmt: skip
            started = time.perf_counter()
            mailer.start()
            status = f"http://127.0.0.1:{status_port}"
            wait_for(lambda: sent(status) >= args.count, timeout=600, interval=0.2, what="backlog sent")
            capacity = args.count / (time.perf_counter() - started)

            # Paced load at half of capacity: time-on-queue should stay near zero.
            rate = capacity / 2
            before = requests.get(status + "/metrics", timeout=5).text
            n = int(rate * args.paced_seconds)
            t0 = time.perf_counter()
            for i in range(n):
                publisher.publish(numbered_signup(args.count + i))
                pause = t0 + (i + 1) / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            wait_for(
                lambda: sent(status) >= args.count + n, timeout=120, interval=0.2, what="paced load sent"
            )
            after = requests.get(status + "/metrics", timeout=5).text
            mailer.terminate()
            publisher.close()
            mail_config = dataclasses.replace(MailerConfig(), backend="smtp", smtp_port=smtp_port)
            reuse = backend_rate(mail_config, 500, reuse=True)
            reconnect = backend_rate(mail_config, 500, reuse=False)
    finally:
        sink.terminate()
    labels = 'queue="mailer.signups.high"'
    # Quantiles over the paced phase only: subtract the backlog phase's buckets.
    paced = "\n".join(_bucket_delta(before, after, "offload_message_time_on_queue_seconds", labels))
    p50 = histogram_quantile(paced, "offload_message_time_on_queue_seconds", labels, 0.5)
    p99 = histogram_quantile(paced, "offload_message_time_on_queue_seconds", labels, 0.99)
    print(f"bench mailer_emails_per_second_one_process: {capacity:.0f} emails/s")
    print(f"bench mailer_smtp_reuse: {reuse:.0f} emails/s")
    print(f"bench mailer_smtp_reconnect_each: {reconnect:.0f} emails/s")
    print(f"ratio mailer_smtp_reuse_vs_reconnect: {reuse / reconnect:.2f}")
    print(f"bench mailer_time_on_queue_p50_at_half_capacity: {p50 * 1000:.1f} ms ({rate:.0f} signups/s)")
    print(f"bench mailer_time_on_queue_p99_at_half_capacity: {p99 * 1000:.1f} ms")
    return 0


def _bucket_delta(before: str, after: str, name: str, labels: str) -> list[str]:
    def buckets(text: str) -> dict[str, float]:
        return {
            line.rsplit(" ", 1)[0]: float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith(name + "_bucket{") and labels in line
        }

    old, new = buckets(before), buckets(after)
    return [f"{key} {value - old.get(key, 0.0)}" for key, value in new.items()]


if __name__ == "__main__":
    sys.exit(main())
