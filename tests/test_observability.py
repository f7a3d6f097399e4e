"""A real Prometheus scrapes the whole stack while it works; PromQL checks the numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import requests

from offload_stats import queries
from offload_stats.store import SqliteStatsStore
from offload_testkit.amqp import ready_count, wait_for
from offload_testkit.prometheus import PrivatePrometheus, job
from offload_testkit.stack import start_autoscaler, start_mailer, start_stats_runner, start_web

RULES = str(Path(__file__).resolve().parents[1] / "deploy/prometheus/offload-rules.yaml")
DASHBOARD = Path(__file__).resolve().parents[1] / "deploy/grafana/offload-dashboard.json"
QUEUES = ("mailer.signups.high", "stats.activity", "stats.requests")

pytestmark = pytest.mark.slow


@pytest.fixture
def stack(core_config, rabbitmq_broker, amqp_vhost, tmp_path):
    env = {
        "OFFLOAD_AMQP_URL": core_config.amqp_url,
        "OFFLOAD_LOG_FORMAT": "text",
        "OFFLOAD_DELAY_TIERS": ",".join(str(d) for d in core_config.delay_tiers),
    }
    autoscaler_config = tmp_path / "autoscaler.yaml"
    autoscaler_config.write_text(
        json.dumps(
            {
                "scaledObjects": [
                    {
                        "name": "mailer",
                        "scaleTargetRef": {
                            "kind": "LocalProcessPool",
                            "name": "mailer",
                            "command": ["sleep", "600"],
                        },
                        "pollingInterval": 1,
                        "minReplicaCount": 0,
                        "maxReplicaCount": 2,
                        "triggers": [
                            {
                                "type": "rabbitmq",
                                "metadata": {
                                    "queueName": "mailer.signups.high",
                                    "value": "100",
                                    "activationValue": "1000000",
                                    "vhostName": amqp_vhost,
                                    "host": rabbitmq_broker.management_url_with_credentials(),
                                },
                            }
                        ],
                    }
                ]
            }
        )
    )
    services = {
        "web": start_web(env, tmp_path),
        "mailer": start_mailer(
            env
            | {
                "OFFLOAD_MAILER_OUTBOX": str(tmp_path / "outbox"),
                "OFFLOAD_MAILER_STORE_URL": f"sqlite:///{tmp_path}/sent.db",
            },
            tmp_path,
        ),
        "stats": start_stats_runner(
            env | {"OFFLOAD_STATS_STORE_URL": f"sqlite:///{tmp_path}/stats.db"}, tmp_path
        ),
        "autoscaler": start_autoscaler({"OFFLOAD_AUTOSCALER_CONFIG": str(autoscaler_config)}, tmp_path),
    }
    jobs = [job(name, service.status_port) for name, service in services.items()]
    jobs.append(
        job(
            "rabbitmq",
            rabbitmq_broker.prometheus_port,
            "/metrics/detailed",
            {"vhost": [amqp_vhost], "family": ["queue_coarse_metrics", "queue_consumer_count"]},
        )
    )
    prometheus = PrivatePrometheus(tmp_path, jobs, rule_files=[RULES]).start()
    # The zero-valued series must be scraped before the first message, or rate() cannot see it arrive.
    wait_for(lambda: len(prometheus.query("up == 1")) == len(jobs), timeout=20, what="every target scraped")
    yield services, prometheus
    prometheus.stop()
    for service in services.values():
        service.terminate()


def test_time_on_queue_counts_every_message_and_every_dashboard_panel_has_data(stack, amqp_url, tmp_path):
    services, prometheus = stack
    web = services["web"].url
    for i in range(20):
        body = {"name": f"P{i}", "email": f"p{i}@example.com", "fruit": "kiwi"}
        assert requests.post(web + "/api/v1/signups", json=body, timeout=10).status_code == 202
    for _ in range(10):
        requests.get(web + "/", timeout=10)
    outbox = tmp_path / "outbox"
    wait_for(lambda: outbox.exists() and len(list(outbox.glob("*.eml"))) == 20, timeout=30, what="20 emails")
    wait_for(lambda: all(ready_count(amqp_url, q) == 0 for q in QUEUES), timeout=30, what="queues drained")

    # Stats counted every message: 20 signups, 20 mail.sent, and the 30 requests reported in
    # however many batch messages (each counted whole, once).
    counts = SqliteStatsStore(str(tmp_path / "stats.db"))
    wait_for(
        lambda: counts.counters("requests").get("total") == 30 and counts.counters("mails").get("sent") == 20,
        timeout=30,
        interval=0.5,
        what="stats counting 20 signups, 20 mails and 30 requests",
    )
    # Each mail.sent carried its signup's acceptance time: stats' signup-to-mail delay counts
    # all 20 (in the last two minutes, should the sends straddle one).
    delays = queries.welcome_delays(counts, 2)
    assert sum(minute.mails for minute in delays) == 20, delays
    assert all(m.p95_seconds is not None and m.p95_seconds < 30 for m in delays if m.mails), delays
    # Consumed: 20 signups by the mailer; 40 messages by stats from stats.activity, and the 30
    # request reports in however many batches the two web workers sent (one per worker per
    # quarter second at most). The low lane took nothing; its series exists at 0 from the start.
    fixed = {"mailer.signups.high": 20.0, "mailer.signups.low": 0.0, "stats.activity": 40.0}
    count = "sum by (queue) (offload_message_time_on_queue_seconds_count)"
    # A message is timed on delivery and counted as acked after its handler: a scrape may fall
    # between the two (the email is written before the ack).
    acked = 'sum by (queue) (offload_messages_total{outcome="acked"})'

    def timed_and_acked() -> dict[str, float] | None:
        timed = prometheus.by_label(count, "queue")
        batches = timed.pop("stats.requests", 0.0)
        new = prometheus.query('sum(offload_stats_events_total{result="new"})')
        if (
            timed == fixed
            and 1 <= batches <= 30
            and new
            and float(new[0]["value"][1]) == 40 + batches
            and prometheus.by_label(acked, "queue")
            == {
                **fixed,
                "stats.requests": batches,
            }
        ):
            return {**fixed, "stats.requests": batches}
        return None

    expected = wait_for(
        timed_and_acked, timeout=30, interval=0.5, what=f"time-on-queue and acked counts {fixed}"
    )
    busy = {queue for queue, consumed in expected.items() if consumed}

    buckets = "sum by (le, queue) (rate(offload_message_time_on_queue_seconds_bucket[1m]))"
    # rate() needs two samples of each bucket series within the window: give it a few scrapes.
    p95 = wait_for(
        lambda: (
            (q := prometheus.by_label(f"histogram_quantile(0.95, {buckets})", "queue"))
            and {k for k, v in q.items() if not math.isnan(v)} == busy
            and q
        ),
        timeout=20,
        interval=0.5,
        what="p95 per queue",
    )
    assert all(math.isfinite(p95[queue]) and p95[queue] >= 0 for queue in busy), p95

    # A scrape of a 1 s interval can miss on a busy machine and leave a target's series stale
    # for a moment: wait for each answer instead of reading it once.
    def served(expr: str) -> list[dict]:
        return wait_for(lambda: prometheus.query(expr), timeout=15, interval=0.5, what=f"series for {expr}")

    wait_for(
        lambda: (
            (d := prometheus.by_label("rabbitmq_detailed_queue_messages_ready", "queue"))
            and {"mailer.signups.high", "stats.requests", "mailer.signups.high.parked"} <= set(d)
            and d
        ),
        timeout=15,
        interval=0.5,
        what="queue depth from the broker",
    )
    served('offload_autoscaler_current_replicas{scaled_object="mailer"}')
    served("offload_autoscaler_metric_value")
    # Every signup answered 202 was timed before its answer left the web. Prometheus must come
    # to show all 20; a single scrape is not enough (CI once read 18 here, long after the last
    # answer): on a miss, say what the web itself exposes and what its log says.
    timed = 'sum(offload_web_request_duration_seconds_count{route="/api/v1/signups"})'
    try:
        wait_for(
            lambda: [r["value"][1] for r in prometheus.query(timed)] == ["20"],
            timeout=15,
            interval=0.5,
            what="20 signups timed by the web, as Prometheus sees them",
        )
    except AssertionError as exc:
        exposed = [
            line
            for line in requests.get(services["web"].status_url + "/metrics", timeout=10).text.splitlines()
            if line.startswith("offload_web_request_duration_seconds_count")
        ]
        log_tail = (tmp_path / "web.log").read_text()[-2000:]
        raise AssertionError(
            f"{exc}: Prometheus {prometheus.query(timed)}, web {exposed}\n{log_tail}"
        ) from None
    served("sum(offload_publish_confirm_seconds_count) > 0")
    rules = requests.get(prometheus.url + "/api/v1/rules", timeout=10).json()["data"]["groups"][0]["rules"]
    assert len(rules) == 7 and all(rule["health"] == "ok" for rule in rules), rules

    # Every panel of the Grafana dashboard: the query parses and returns series right now.
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$queue", ".*")
            # A few scrapes at most: rate() needs two samples of a series inside its window.
            wait_for(
                lambda e=expr: prometheus.query(e),
                timeout=15,
                interval=0.5,
                what=f"series for panel {panel['title']!r}: {expr}",
            )
