"""Config errors name the field."""

from __future__ import annotations

import pytest

from offload_autoscaler.spec import SpecError, parse_config

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
                        "metadata": {"queueName": "q", "value": 1, "host": "h", "mode": "Bogus"},
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
