"""Slow-header benchmark: a prompt client's signup latency while a crowd of slow clients holds
four times the web's worker connections open, one header byte a second each.

The web runs with its default workers and threads and OFFLOAD_WEB_WORKER_CONNECTIONS=250 (so
the crowd is 2 000 connections, not 8 000: one client process has to keep them going). The
prompt client signs up on a new connection each time, one after another, and the same
number of signups is timed three ways, on one private broker:

1. quiet: no crowd;
2. crowd: the crowd against the web's worker (offload_core.header_deadline);
3. control: the crowd against gunicorn's own gthread worker (OFFLOAD_WEB_HEADER_TIMEOUT=0),
   where a signup that gets no answer in 2 s counts as unanswered (only 10 are tried).

Printed: p50 and p99 of 1 and 2 (goal for 2: p99 under 100 ms, no 5xx), their ratio, and the
answered share of 3.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

import requests
from common import private_broker, web_server

from offload_testkit.slow_clients import SlowHeaderCrowd

WORKERS = 2
WORKER_CONNECTIONS = 250
CROWD = 4 * WORKERS * WORKER_CONNECTIONS


def signups(url: str, count: int, timeout: float) -> list[float | None]:
    """Seconds per signup, None for one that got no 202 in time."""
    timings: list[float | None] = []
    for _ in range(count):
        body = {"name": "Prompt", "email": f"prompt-{uuid.uuid4().hex[:12]}@example.com", "fruit": "apple"}
        started = time.perf_counter()
        try:
            answer = requests.post(
                url + "/api/v1/signups", json=body, headers={"Connection": "close"}, timeout=timeout
            )
        except requests.RequestException:
            timings.append(None)
            continue
        if answer.status_code >= 500:
            raise RuntimeError(f"a signup was answered {answer.status_code}: {answer.text[:200]}")
        timings.append(time.perf_counter() - started if answer.status_code == 202 else None)
    return timings


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000


def timed(label: str, timings: list[float | None]) -> tuple[float, float]:
    answered = [t for t in timings if t is not None]
    if len(answered) != len(timings):
        raise RuntimeError(f"{label}: {len(timings) - len(answered)} of {len(timings)} signups unanswered")
    p50, p99 = percentile(answered, 50), percentile(answered, 99)
    print(f"bench web_signup_p50_ms_{label}: {p50:.1f} ms over {len(answered)} signups")
    print(f"bench web_signup_p99_ms_{label}: {p99:.1f} ms over {len(answered)} signups")
    return p50, p99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--signups", type=int, default=500)
    count = parser.parse_args().signups
    env = {
        "OFFLOAD_WEB_WORKERS": str(WORKERS),
        "OFFLOAD_WEB_WORKER_CONNECTIONS": str(WORKER_CONNECTIONS),
        "OFFLOAD_WEB_WORKER_CLASS": "gthread",
    }
    with private_broker() as (broker, workdir):
        with web_server(broker.amqp_url(), workdir, "web-deadline", **env) as web:
            signups(web.url, 20, timeout=10)  # connections and caches warm
            _, quiet = timed("quiet", signups(web.url, count, timeout=10))
            with SlowHeaderCrowd(web.address, CROWD) as crowd:
                _, crowded = timed("slow_header_crowd", signups(web.url, count, timeout=10))
            print(f"ratio web_signup_p99_slow_header_crowd_vs_quiet: {crowded / quiet:.2f}")
            print(f"bench web_slow_header_crowd_reopened: {crowd.reopened} connections (crowd {CROWD})")
        control_env = {**env, "OFFLOAD_WEB_HEADER_TIMEOUT": "0"}
        with web_server(broker.amqp_url(), workdir, "web-control", **control_env) as web:
            with SlowHeaderCrowd(web.address, CROWD):
                control = signups(web.url, 10, timeout=2)
            answered = sum(t is not None for t in control)
            label = "web_signups_answered_slow_header_crowd_gunicorn_worker"
            print(f"bench {label}: {answered} of {len(control)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
