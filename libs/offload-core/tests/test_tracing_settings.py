"""Tracing's settings: off unless an endpoint is set, and a bad OTEL_* value named.

The spans themselves are checked end to end against a real Jaeger (tests/test_tracing.py);
the tracer provider is process-wide, so this module does not install one."""

from __future__ import annotations

import pytest

from offload_core import tracing
from offload_core.settings import ConfigError, from_env


def test_off_without_an_endpoint_and_when_disabled():
    assert not from_env(tracing.TracingSettings, {}).enabled
    assert from_env(tracing.TracingSettings, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}).enabled
    assert from_env(
        tracing.TracingSettings, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/v1/traces"}
    ).enabled
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    assert not from_env(tracing.TracingSettings, disabled).enabled


def test_an_unsupported_protocol_is_named():
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        tracing.configure(
            "test", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
        )


def test_disabled_tracing_is_a_no_op():
    tracing.configure("test", {})
    assert not tracing.enabled()
    headers: dict = {}
    span = tracing.start_producer("offload.events", "signup.created.high", "id-1", headers)
    assert headers == {} and not span.is_recording()
    assert tracing.current_ids() == {}


def test_no_propagation_extracts_an_empty_context_not_none():
    from opentelemetry.context import Context

    assert (
        tracing._NoPropagation().extract({"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
        == Context()
    )
