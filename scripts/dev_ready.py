"""`make dev`'s one "ready" line: waits until every local service answers its readiness URL,
then prints where everything is, with links to prepared Prometheus graphs, and stays up
(honcho stops the stack when one of its processes ends).

The graphs are Prometheus expression-browser links: time-on-queue p50 and p95 per queue
(`offload_message_time_on_queue_seconds`), and the mailer queues' depth (RabbitMQ's own
metric) beside the mailer replicas the autoscaler runs.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlencode

PROMETHEUS = f"http://127.0.0.1:{os.environ.get('OFFLOAD_DEV_PROMETHEUS_PORT', '9090')}"
MANAGEMENT = f"http://127.0.0.1:{os.environ.get('OFFLOAD_DEV_MANAGEMENT_PORT', '15672')}"
JAEGER = "http://127.0.0.1:16686"
# After this long, name what is still not ready (once), and keep waiting.
PATIENCE_SECONDS = 90.0


@dataclass(frozen=True)
class Check:
    name: str
    url: str


def checks(tracing: bool) -> list[Check]:
    found = [
        Check("web", "http://127.0.0.1:9100/readyz"),  # the status ports (offload_core.status_port)
        Check("stats API", "http://127.0.0.1:9104/readyz"),
        Check("stats runner", "http://127.0.0.1:9102/readyz"),
        Check("autoscaler", "http://127.0.0.1:9103/readyz"),
        Check("mailer", "http://127.0.0.1:9110/readyz"),  # slot 0, started by the autoscaler
        Check("broker management", f"{MANAGEMENT}/api/overview"),
    ]
    if os.path.exists("/usr/bin/prometheus"):
        found.append(Check("prometheus", f"{PROMETHEUS}/-/ready"))
    if tracing:
        found.append(Check("jaeger", "http://127.0.0.1:13133/status"))
    return found


def answers(check: Check) -> bool:
    request = urllib.request.Request(check.url)
    if check.url.startswith(MANAGEMENT):
        request.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")  # guest:guest, the dev node's
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def graph(*expressions: str, minutes: int = 15) -> str:
    """A Prometheus expression-browser link with one graph panel per expression."""
    params: dict[str, str] = {}
    for i, expression in enumerate(expressions):
        params |= {f"g{i}.expr": expression, f"g{i}.tab": "0", f"g{i}.range_input": f"{minutes}m"}
    return f"{PROMETHEUS}/graph?{urlencode(params)}"


def time_on_queue(quantile: float) -> str:
    return (
        f"histogram_quantile({quantile}, sum by (queue, le) "
        "(rate(offload_message_time_on_queue_seconds_bucket[1m])))"
    )


MAILER_DEPTH = 'sum(rabbitmq_detailed_queue_messages{queue=~"mailer\\\\.signups\\\\..*"})'
MAILER_REPLICAS = 'offload_autoscaler_current_replicas{scaled_object="mailer"}'


def ready_message(seconds: float, tracing: bool, prometheus: bool) -> str:
    lines = [
        f"offload is ready ({seconds:.1f}s):",
        "  web          http://127.0.0.1:8000  (signup form; JSON API under /api/v1)",
        "  stats        http://127.0.0.1:8001/stats  (JSON under /api/v1/stats)",
        "  welcome mail http://127.0.0.1:8001/api/v1/stats/welcome-delay  (signup to email, p50/p95)",
        f"  mail         {os.environ.get('OFFLOAD_MAILER_OUTBOX', '.state/outbox')}/*.eml",
        f"  broker       {MANAGEMENT}  (RabbitMQ management, guest/guest)",
    ]
    if prometheus:
        lines += [
            f"  prometheus   {PROMETHEUS}/alerts  (the project's alert rules)",
            f"  graphs       time on queue p50/p95: {graph(time_on_queue(0.5), time_on_queue(0.95))}",
            f"               mailer queue depth vs replicas: {graph(MAILER_DEPTH, MAILER_REPLICAS)}",
        ]
    if tracing:
        lines.append(f"  traces       {JAEGER}/api/traces?service=offload-web  (Jaeger's query API)")
    return "\n".join(lines)


def main() -> int:
    tracing = os.environ.get("OFFLOAD_DEV_TRACING", "off") == "on"
    started = time.monotonic()
    pending = checks(tracing)
    named = False
    while pending:
        pending = [check for check in pending if not answers(check)]
        if pending and not named and time.monotonic() - started > PATIENCE_SECONDS:
            print(f"still waiting for: {', '.join(c.name for c in pending)}", flush=True)
            named = True
        time.sleep(0.5)
    prometheus = any(c.name == "prometheus" for c in checks(tracing))
    print(ready_message(time.monotonic() - started, tracing, prometheus), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
