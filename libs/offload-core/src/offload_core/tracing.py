"""Traces across the queue: W3C trace context carried in the AMQP headers.

A publish is a PRODUCER span whose context travels in the message's `traceparent` (and
`tracestate`) headers; a delivery is a CONSUMER span, child of that producer, with its
time on queue as an attribute, and the handler runs inside it (the SMTP send, the
publishes it makes). A batch handler runs in one span of its own that links to every
message it took, as OpenTelemetry's messaging conventions do for batch processing
(https://opentelemetry.io/docs/specs/semconv/messaging/messaging-spans/#trace-structure).

The core carries the context itself: opentelemetry-instrumentation-pika wraps only
BlockingConnection, and every connection here is a SelectConnection.

Configured by the standard OTEL_* variables, read by the SDK: tracing is on only when an
OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
and OTEL_SDK_DISABLED is not true; otherwise every function here is a no-op that costs a
flag test. The exporter is OTLP over HTTP/protobuf (the gRPC one would add grpcio to
every image). OTEL_PROPAGATORS=none sends no context: each service then starts traces
of its own.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from offload_core.settings import from_env, setting

log = logging.getLogger("offload.tracing")

TRACER_NAME = "offload"
TIME_ON_QUEUE_ATTRIBUTE = "offload.time_on_queue_s"
OUTCOME_ATTRIBUTE = "offload.outcome"
MESSAGING_SYSTEM = "rabbitmq"


@dataclass(frozen=True)
class TracingSettings:
    """The OTEL_* variables the services check themselves; the SDK reads the others
    (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, headers, timeouts)."""

    endpoint: str | None = setting("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    traces_endpoint: str | None = setting("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    protocol: str = setting("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", choices=("http/protobuf",))
    disabled: bool = setting("OTEL_SDK_DISABLED", False)
    service_name: str | None = setting("OTEL_SERVICE_NAME", None)

    @property
    def enabled(self) -> bool:
        return not self.disabled and bool(self.endpoint or self.traces_endpoint)


_enabled = False


def enabled() -> bool:
    return _enabled


def configure(service: str, environ: Mapping[str, str] | None = None) -> TracingSettings:
    """Install the SDK's tracer provider with the OTLP/HTTP exporter when an endpoint is
    set; the service name defaults to `offload-<service>`. ConfigError on a bad setting."""
    global _enabled
    settings = from_env(TracingSettings, os.environ if environ is None else environ)
    if not settings.enabled:
        return settings
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({} if settings.service_name else {"service.name": f"offload-{service}"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    propagators = getattr(propagate.get_global_textmap(), "_propagators", None)
    if propagators is not None and not propagators:
        # OTEL_PROPAGATORS=none gives an empty CompositePropagator, whose extract() hands
        # back the context it was given: None when called without one, as the Flask
        # instrumentation does, which then fails every request.
        propagate.set_global_textmap(_NoPropagation())
    _enabled = True
    endpoint = settings.traces_endpoint or settings.endpoint
    log.info("tracing on", extra={"fields": {"otlp_endpoint": endpoint}})
    return settings


def shutdown(timeout_ms: int = 5000) -> None:
    """Export what is buffered; call once when the process stops."""
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if _enabled and force_flush is not None:
        force_flush(timeout_ms)


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def current_ids() -> dict[str, str]:
    """The current trace and span ids, as the JSON logs print them; empty outside a span."""
    if not _enabled:
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def start_producer(
    exchange: str, routing_key: str, message_id: str, headers: MutableMapping[str, Any]
) -> Span:
    """A PRODUCER span for one publish, its context written into `headers`. The caller ends
    it (on the broker's confirm, so its length is the publish's)."""
    if not _enabled:
        return trace.INVALID_SPAN
    span = tracer().start_span(
        f"publish {routing_key}",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": "send",
            "messaging.destination.name": exchange,
            "messaging.rabbitmq.destination.routing_key": routing_key,
            "messaging.message.id": message_id,
        },
    )
    propagate.inject(headers, context=trace.set_span_in_context(span))
    return span


def start_consumer(
    queue: str, headers: Mapping[str, Any], message_id: str | None, time_on_queue: float | None
) -> Span:
    """A CONSUMER span for one delivery, child of the producer whose context it carries."""
    if not _enabled:
        return trace.INVALID_SPAN
    attributes: dict[str, Any] = {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "process",
        "messaging.destination.name": queue,
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    if time_on_queue is not None:
        attributes[TIME_ON_QUEUE_ATTRIBUTE] = round(time_on_queue, 6)
    return tracer().start_span(
        f"process {queue}", context=_extract(headers), kind=SpanKind.CONSUMER, attributes=attributes
    )


# Off, the context managers below are this one shared object: no generator per message.
_NO_SPAN: AbstractContextManager[Any] = nullcontext(trace.INVALID_SPAN)


def batch_span(queue: str, consumer_spans: list[Span]) -> AbstractContextManager[Any]:
    """The span a batch handler runs in: a root of its own, linked to each message's span."""
    if not _enabled:
        return _NO_SPAN
    links = [Link(s.get_span_context()) for s in consumer_spans if s.get_span_context().is_valid]
    return tracer().start_as_current_span(
        f"process batch {queue}",
        context=trace.set_span_in_context(trace.INVALID_SPAN),
        kind=SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.destination.name": queue,
            "messaging.batch.message_count": len(consumer_spans),
        },
    )


def within(span: Span) -> AbstractContextManager[Any]:
    """Make `span` current (its children: the handler's own spans) without ending it."""
    if not _enabled:
        return _NO_SPAN
    return trace.use_span(span, end_on_exit=False)


def span(name: str, **attributes: Any) -> AbstractContextManager[Any]:
    """An INTERNAL span, child of the current one (the SMTP send, say)."""
    if not _enabled:
        return _NO_SPAN
    return tracer().start_as_current_span(name, attributes=attributes)


def end(span_: Span, *, outcome: str, error: str = "") -> None:
    """End a span with the message's outcome; an error status when it did not succeed."""
    if not _enabled:
        return
    span_.set_attribute(OUTCOME_ATTRIBUTE, outcome)
    if error:
        span_.set_status(Status(StatusCode.ERROR, error))
    span_.end()


class _NoPropagation(TextMapPropagator):
    """Carries nothing, and extracts the context it is given or an empty one."""

    def extract(
        self, carrier: Any, context: Context | None = None, getter: Getter[Any] = default_getter
    ) -> Context:
        return context if context is not None else Context()

    def inject(
        self, carrier: Any, context: Context | None = None, setter: Setter[Any] = default_setter
    ) -> None:
        return None

    @property
    def fields(self) -> set[str]:
        return set()


def _extract(headers: Mapping[str, Any]) -> Any:
    # AMQP header values may arrive as bytes (pika decodes long strings to str, but a
    # publisher of another language may send bytes).
    carrier = {
        key: value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        for key, value in headers.items()
        if key in ("traceparent", "tracestate", "baggage")
    }
    return propagate.extract(carrier)
