"""Config errors name the field."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from offload_autoscaler.spec import SpecError, parse_config, parse_scaled_object
from offload_core.fields import declare
from offload_core.settings import ConfigError, from_env

GOOD = {
    "scaleTargetRef": {"name": "mailer"},
    "triggers": [
        {"type": "rabbitmq", "metadata": {"queueName": "q", "value": "10", "host": "http://127.0.0.1:15672"}}
    ],
}


def config(**changes):
    item = GOOD | changes
    return {"scaledObjects": [item]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "config.scaledObjects must be a non-empty list"),
        (config(scaleTargetRef=None), "scaledObjects[0].scaleTargetRef must be a mapping"),
        (config(minReplicaCount=5, maxReplicaCount=2), "scaledObjects[0].maxReplicaCount (2) is below"),
        (config(pollingInterval="soon"), "scaledObjects[0].pollingInterval must be a number"),
        (
            config(minReplicaCount=1, idleReplicaCount=1),
            "scaledObjects[0].idleReplicaCount (1) must be less than minReplicaCount (1)",
        ),
        (
            config(
                triggers=[
                    {
                        "type": "rabbitmq",
                        "metadata": {
                            "queueName": "q",
                            "value": 1,
                            "host": "amqp://h",
                            "excludeUnacknowledged": True,
                        },
                    }
                ]
            ),
            "scaledObjects[0].triggers[0].metadata.excludeUnacknowledged needs protocol http",
        ),
        (
            config(
                triggers=[{"type": "rabbitmq", "metadata": {"queueName": "q", "value": 1, "host": "h:5672"}}]
            ),
            "metadata.host must start with amqp://, amqps://, http:// or https://",
        ),
        (config(triggers=[]), "scaledObjects[0].triggers must be a non-empty list"),
        (
            config(triggers=[{"type": "kafka", "metadata": {}}]),
            "scaledObjects[0].triggers[0].type must be rabbitmq",
        ),
        (
            config(triggers=[{"type": "rabbitmq", "metadata": {"queueName": "q", "host": "http://h"}}]),
            "scaledObjects[0].triggers[0].metadata.value is required",
        ),
        (
            config(
                triggers=[
                    {"type": "rabbitmq", "metadata": {"queueName": "q", "value": "x", "host": "http://h"}}
                ]
            ),
            "scaledObjects[0].triggers[0].metadata.value must be a number",
        ),
        (
            config(
                triggers=[
                    {
                        "type": "rabbitmq",
                        "metadata": {"queueName": "q", "value": 1, "host": "http://h", "mode": "Bogus"},
                    }
                ]
            ),
            "scaledObjects[0].triggers[0].metadata.mode must be one of QueueLength, MessageRate",
        ),
        (
            config(triggers=[{"type": "rabbitmq", "metadata": {"queueName": "q", "value": 1}}]),
            "scaledObjects[0].triggers[0].metadata.host (or hostFromEnv / hostFromFile) is required",
        ),
        (
            config(
                triggers=[
                    {"type": "rabbitmq", "metadata": {"queueName": "q", "value": 1, "hostFromEnv": "NOPE_X"}}
                ]
            ),
            "metadata.hostFromEnv names NOPE_X, which is not set",
        ),
        (
            config(fallback={"failureThreshold": 3, "replicas": 2, "behavior": "sometimes"}),
            "scaledObjects[0].fallback.behavior must be one of",
        ),
        (config(cooldownPeriods=3), "scaledObjects[0] has unknown field(s): cooldownPeriods"),
        (
            config(
                advanced={
                    "horizontalPodAutoscalerConfig": {
                        "behavior": {
                            "scaleUp": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}
                        }
                    }
                }
            ),
            "behavior.scaleUp.policies[0].value must be at least 1",
        ),
    ],
)
def test_invalid_config_names_the_field(data, message):
    with pytest.raises(SpecError) as error:
        parse_config(data)
    assert message in str(error.value)


def test_credentials_with_special_characters_are_quoted_into_the_url(monkeypatch):
    monkeypatch.setenv("RMQ_PASSWORD", "p@ss:w/rd#%")
    metadata = {
        "queueName": "q",
        "value": 5,
        "host": "http://127.0.0.1:15672",
        "username": "mon",
        "passwordFromEnv": "RMQ_PASSWORD",
    }
    [scaled] = parse_config(config(triggers=[{"type": "rabbitmq", "metadata": metadata}]))
    assert scaled.triggers[0].host == "http://mon:p%40ss%3Aw%2Frd%23%25@127.0.0.1:15672"


@pytest.mark.parametrize(
    ("host", "protocol"),
    [
        ("amqp://u:p@h:5672/%2F", "amqp"),
        ("amqps://h", "amqp"),
        ("http://h:15672", "http"),
        ("https://h", "http"),
    ],
)
def test_protocol_defaults_to_auto_from_the_host_scheme(host, protocol):
    # KEDA rabbitmq_scaler.go: protocol defaults to "auto", resolved in rabbitMQMetadata.Validate.
    data = config(triggers=[{"type": "rabbitmq", "metadata": {"queueName": "q", "value": 1, "host": host}}])
    [scaled] = parse_config(data)
    assert scaled.triggers[0].protocol == protocol


def test_idle_replica_count_below_min_is_accepted():
    [scaled] = parse_config(config(minReplicaCount=2, idleReplicaCount=0))
    assert scaled.idle_replicas == 0
    [plain] = parse_config(config())
    assert plain.idle_replicas is None and plain.behavior is None


def test_defaults_are_kedas():
    # The README's defaults table; KEDA's from scaledobject_types.go, scale_executor.go and
    # rabbitmq_scaler.go.
    [scaled] = parse_config(config())
    assert (scaled.polling_interval, scaled.cooldown_period, scaled.initial_cooldown_period) == (30, 300, 0)
    assert (scaled.min_replicas, scaled.max_replicas, scaled.idle_replicas) == (0, 100, None)
    assert scaled.fallback is None and scaled.behavior is None
    trigger = scaled.triggers[0]
    assert (trigger.protocol, trigger.mode, trigger.operation, trigger.activation_value) == (
        "http",
        "QueueLength",
        "sum",
        0,
    )
    assert (trigger.vhost, trigger.exclude_unacknowledged, trigger.queue_regex) == ("/", False, None)


@pytest.mark.parametrize(
    ("section", "data", "message"),
    [
        (
            "metadata",
            config(
                triggers=[
                    {"type": "rabbitmq", "metadata": GOOD["triggers"][0]["metadata"] | {"queueLength": 5}}
                ]
            ),
            "scaledObjects[0].triggers[0].metadata has unknown field(s): queueLength",
        ),
        (
            "fallback",
            config(fallback={"failureThreshold": 3, "replicas": 2, "replica": 1}),
            "scaledObjects[0].fallback has unknown field(s): replica",
        ),
        (
            "scaleTargetRef",
            config(scaleTargetRef={"name": "mailer", "namespace": "x"}),
            "scaledObjects[0].scaleTargetRef has unknown field(s): namespace",
        ),
    ],
)
def test_each_section_accepts_exactly_the_keys_it_declares(section, data, message):
    with pytest.raises(SpecError) as error:
        parse_config(data)
    assert message in str(error.value)


def test_credentials_may_come_from_env_or_file_because_they_are_declared_as_credentials(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("RMQ_HOST", "http://127.0.0.1:15672")
    (tmp_path / "user").write_text("reader\n")
    metadata = {
        "queueName": "q",
        "value": 1,
        "hostFromEnv": "RMQ_HOST",
        "usernameFromFile": str(tmp_path / "user"),
    }
    [scaled] = parse_config(config(triggers=[{"type": "rabbitmq", "metadata": metadata}]))
    assert scaled.triggers[0].host == "http://reader:@127.0.0.1:15672"


@dataclass(frozen=True)
class Switch:
    enabled: bool = declare("X_ENABLED", False)


def test_settings_and_the_scaledobject_spec_parse_a_boolean_alike():
    """The same word means the same in an environment variable and in a ScaledObject."""
    for word, meant in (("on", True), ("true", True), ("off", False), ("False", False)):
        assert from_env(Switch, {"X_ENABLED": word}).enabled is meant
        raw = {
            "scaleTargetRef": {"name": "m"},
            "paused": word,
            "triggers": [
                {"type": "rabbitmq", "metadata": {"queueName": "q", "value": 1, "host": "http://h"}}
            ],
        }
        assert parse_scaled_object(raw, "so").paused is meant
    with pytest.raises(ConfigError, match="X_ENABLED must be true or false"):
        from_env(Switch, {"X_ENABLED": "maybe"})
    with pytest.raises(SpecError, match=r"so\.paused must be true or false"):
        parse_scaled_object(raw | {"paused": "maybe"}, "so")


def test_a_target_other_than_an_apps_v1_deployment_is_refused():
    raw = GOOD | {"scaleTargetRef": {"name": "m", "apiVersion": "argoproj.io/v1alpha1"}}
    with pytest.raises(SpecError, match=r"scaleTargetRef\.apiVersion must be one of apps/v1"):
        parse_scaled_object(raw, "so")
    assert parse_scaled_object(GOOD | {"scaleTargetRef": {"name": "m", "apiVersion": "apps/v1"}}, "so")


def test_an_inline_password_of_the_wrong_kind_is_not_shown():
    metadata = GOOD["triggers"][0]["metadata"] | {"username": "u", "password": 123456789}
    with pytest.raises(SpecError) as caught:
        parse_scaled_object(GOOD | {"triggers": [{"type": "rabbitmq", "metadata": metadata}]}, "so")
    assert "password must be a non-empty string" in str(caught.value)
    assert "123456789" not in str(caught.value)


def test_expected_wait_time_reads_its_initial_throughput_and_needs_the_management_api():
    metadata = {"mode": "ExpectedWaitTime", "queueName": "q", "value": 5, "host": "http://h"}
    [scaled] = parse_config(config(triggers=[{"type": "rabbitmq", "metadata": metadata}]))
    assert (scaled.triggers[0].mode, scaled.triggers[0].initial_throughput) == ("ExpectedWaitTime", 1.0)
    amqp = metadata | {"host": "amqp://h", "initialThroughput": "20"}
    with pytest.raises(SpecError, match="mode ExpectedWaitTime needs protocol http"):
        parse_config(config(triggers=[{"type": "rabbitmq", "metadata": amqp}]))
