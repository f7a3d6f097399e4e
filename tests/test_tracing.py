"""One signup, one trace: web → broker → mailer → stats, read back from a real trace store.

The stack runs as real processes against the private broker and a real SMTP server, and
exports OTLP/HTTP to a private Jaeger v2 (scripts/release-tools.sh builds it). The trace
is fetched through Jaeger's query API and its parent/child links are checked span by span.
The negative control switches the propagation off in the web (OTEL_PROPAGATORS=none, the
standard variable): the same checks must then find the mailer and stats outside the trace.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from offload_testkit.amqp import wait_for
from offload_testkit.jaeger import PrivateJaeger, SpanRecord
from offload_testkit.smtp import SmtpSink
from offload_testkit.stack import start_mailer, start_stats_runner, start_web
from tests.test_log_trail import json_lines

pytestmark = pytest.mark.slow

QUIET_SECONDS = 3.0


@dataclass(frozen=True)
class SignupTrace:
    trace_id: str
    spans: list[SpanRecord]
    stats_batches: list[SpanRecord]  # the stats batch spans (traces of their own)


def check_signup_trace(found: SignupTrace) -> list[str]:
    """What is missing from the chain a signup's trace must show; empty when it is whole."""
    spans = found.spans
    by_id = {s.span_id: s for s in spans}
    problems: list[str] = []

    def one(what: str, **want: object) -> SpanRecord | None:
        matches = [s for s in spans if _matches(s, want)]
        if len(matches) != 1:
            problems.append(f"{what}: {len(matches)} spans in trace {found.trace_id}, want 1")
            return None
        return matches[0]

    def descends(span: SpanRecord, ancestor: SpanRecord) -> bool:
        current: SpanRecord | None = span
        while current is not None and current.parent_id is not None:
            if current.parent_id == ancestor.span_id:
                return True
            current = by_id.get(current.parent_id)
        return False

    request = one("the web's request span", service="offload-web", kind="server")
    signup = one("the signup.created publish", service="offload-web", kind="producer", name="signup.created")
    if request and signup and not descends(signup, request):
        problems.append("the signup.created publish is not under the web's request span")
    accepted = one(
        "the signup.accepted publish", service="offload-web", kind="producer", name="signup.accepted"
    )
    if request and accepted and not descends(accepted, request):
        problems.append("the signup.accepted publish is not under the web's request span")
    delivery = one("the mailer's delivery", service="offload-mailer", kind="consumer", parent=signup)
    if delivery is not None and not float(delivery.attributes.get("offload.time_on_queue_s", -1)) >= 0:
        problems.append("the mailer's delivery span has no time on queue")
    one("the SMTP send", service="offload-mailer", name="send mail", parent=delivery)
    sent = one(
        "the mail.sent publish", service="offload-mailer", kind="producer", name="mail.sent", parent=delivery
    )
    counted = [
        one("stats' delivery of signup.accepted", service="offload-stats", kind="consumer", parent=accepted),
        one("stats' delivery of mail.sent", service="offload-stats", kind="consumer", parent=sent),
    ]
    linked = {link for batch in found.stats_batches for link in batch.links}
    for span in counted:
        if span is not None and (span.trace_id, span.span_id) not in linked:
            problems.append(f"no stats batch span links to {span.name} ({span.span_id})")
    return problems


def _matches(span: SpanRecord, want: dict[str, object]) -> bool:
    for key, value in want.items():
        if key == "parent":
            if value is None or span.parent_id != value.span_id:  # type: ignore[attr-defined]
                return False
        elif key == "name":
            if str(value) not in span.name:
                return False
        elif getattr(span, key) != value:
            return False
    return True


def render_tree(spans: list[SpanRecord]) -> str:
    """The trace as an indented tree: service, kind, name, and time on queue where known."""
    children: dict[str | None, list[SpanRecord]] = {}
    ids = {s.span_id for s in spans}
    for span in spans:
        children.setdefault(span.parent_id if span.parent_id in ids else None, []).append(span)

    def lines(parent: str | None, depth: int) -> Iterator[str]:
        for span in children.get(parent, []):
            queue_time = span.attributes.get("offload.time_on_queue_s")
            extra = f"  time_on_queue={float(queue_time) * 1000:.1f}ms" if queue_time is not None else ""
            yield f"{'  ' * depth}{span.service} {span.kind} {span.name!r}{extra}"
            yield from lines(span.span_id, depth + 1)

    return "\n".join(lines(None, 0))


def run_signup(core_config, tmp_path: Path, web_env: dict[str, str]) -> SignupTrace:
    jaeger = PrivateJaeger(tmp_path).start()
    smtp = SmtpSink().start()
    env = {
        "OFFLOAD_AMQP_URL": core_config.amqp_url,
        "OFFLOAD_DELAY_TIERS": ",".join(str(d) for d in core_config.delay_tiers),
        "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within a tenth of a second, not five
    }
    services = []
    try:
        services = [
            start_web(env | web_env, tmp_path),
            start_mailer(
                env
                | {
                    "OFFLOAD_MAILER_BACKEND": "smtp",
                    "OFFLOAD_SMTP_PORT": str(smtp.port),
                    "OFFLOAD_MAILER_STORE_URL": f"sqlite:///{tmp_path}/sent.db",
                },
                tmp_path,
            ),
            start_stats_runner(env | {"OFFLOAD_STATS_STORE_URL": f"sqlite:///{tmp_path}/stats.db"}, tmp_path),
        ]
        answer = requests.post(
            services[0].url + "/api/v1/signups",
            json={"name": "Ada", "email": "ada@example.org", "fruit": "apple"},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        signup_id = answer.json()["id"]
        wait_for(lambda: smtp.count() == 1, timeout=30, what="the welcome email")
        # The web's log line for the signup names its trace (the JSON logs carry trace ids).
        (accepted,) = [
            e for e in json_lines(tmp_path / "web.log") if e.get("signup_id") == signup_id and "trace_id" in e
        ]
        trace_id = accepted["trace_id"]

        def stats_counted_both() -> bool:
            entries = json_lines(tmp_path / "stats.log")
            types = {
                e.get("type") for e in entries if e.get("outcome") == "acked" and signup_id in e["message_id"]
            }
            return {"signup.accepted", "mail.sent"} <= types

        wait_for(stats_counted_both, timeout=30, what="stats' outcome lines for both events")
        # The negative control never passes the checks: it is done when the trace has not
        # grown for QUIET_SECONDS (every service exports within a tenth of a second).
        last_change = {"size": (-1, -1), "at": time.monotonic()}

        def exported() -> SignupTrace | None:
            spans = jaeger.trace(trace_id)
            batches = [
                s
                for trace in jaeger.traces("offload-stats")
                for s in trace
                if s.name.startswith("process batch")
            ]
            found = SignupTrace(trace_id, spans, batches)
            if not check_signup_trace(found):
                return found
            size = (len(spans), len(batches))
            if size != last_change["size"]:
                last_change.update(size=size, at=time.monotonic())
            return found if spans and time.monotonic() - last_change["at"] > QUIET_SECONDS else None

        found = wait_for(exported, timeout=30, interval=0.3, what="the trace in Jaeger")
        return found
    finally:
        for service in services:
            service.terminate()
        smtp.stop()
        jaeger.stop()


@pytest.mark.parametrize("worker_class", ["gthread", "gevent"])
def test_one_signup_is_one_trace_from_the_request_to_the_smtp_send_and_the_count(
    core_config, tmp_path, worker_class
):
    """Under either gunicorn worker: gevent runs the exporter's thread as a greenlet."""
    found = run_signup(core_config, tmp_path, web_env={"OFFLOAD_WEB_WORKER_CLASS": worker_class})
    print(render_tree(found.spans))
    assert check_signup_trace(found) == []


def test_without_propagation_the_runners_spans_fall_out_of_the_trace(core_config, tmp_path):
    """Negative control: the checks above notice when the context does not travel."""
    found = run_signup(core_config, tmp_path, web_env={"OTEL_PROPAGATORS": "none"})
    problems = check_signup_trace(found)
    assert any("the mailer's delivery" in p for p in problems), problems
    assert {s.service for s in found.spans} == {"offload-web"}
