"""ScaledObject-like specs with KEDA's field names, parsed and checked at start.

A config file (YAML or JSON) holds `scaledObjects: [...]`; every mistake is reported
with the path of the field, e.g. `scaledObjects[0].triggers[0].metadata.value`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class SpecError(ValueError):
    """The config cannot be used; the message names the field."""


@dataclass(frozen=True)
class ScalingPolicy:
    type: str  # Pods | Percent
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    stabilization_window_seconds: int
    select_policy: str  # Max | Min | Disabled
    policies: tuple[ScalingPolicy, ...]


# What autoscaling/v2 fills in for a field a behavior leaves out (defaultHPAScaleUpRules and
# defaultHPAScaleDownRules in pkg/apis/autoscaling/v2/defaults.go; the scale-down window is the
# controller's --horizontal-pod-autoscaler-downscale-stabilization, 300 s by default).
DEFAULT_SCALE_UP = ScalingRules(0, "Max", (ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)))
DEFAULT_SCALE_DOWN = ScalingRules(300, "Max", (ScalingPolicy("Percent", 100, 15),))


@dataclass(frozen=True)
class Behavior:
    """advanced.horizontalPodAutoscalerConfig.behavior, each side completed with the defaults."""

    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN


@dataclass(frozen=True)
class Trigger:
    mode: str  # QueueLength | MessageRate
    value: float
    activation_value: float
    protocol: str  # http | amqp (KEDA's "auto" resolved from the host's scheme)
    queue_name: str | None
    queue_regex: str | None
    operation: str  # sum | max | avg
    exclude_unacknowledged: bool
    vhost: str
    host: str  # management URL (http) or AMQP URL (amqp), credentials resolved


@dataclass(frozen=True)
class Fallback:
    failure_threshold: int
    replicas: int
    behavior: str  # static | currentReplicas | currentReplicasIfHigher | currentReplicasIfLower


@dataclass(frozen=True)
class ScaledObject:
    name: str
    target_kind: str  # Deployment | LocalProcessPool
    target_name: str
    target_command: tuple[str, ...] = ()
    target_env: tuple[tuple[str, str], ...] = ()
    polling_interval: float = 30.0
    cooldown_period: float = 300.0
    initial_cooldown_period: float = 0.0
    min_replicas: int = 0
    max_replicas: int = 100
    idle_replicas: int | None = None
    paused: bool = False
    paused_replicas: int | None = None
    fallback: Fallback | None = None
    # None: no behavior given, so KEDA creates its HPA without one, and the HPA's older
    # rules apply (at most double or +4 per reconcile up, a 300 s window down, no down rate).
    behavior: Behavior | None = None
    triggers: tuple[Trigger, ...] = field(default_factory=tuple)


class _Reader:
    """Typed access to a mapping that reports the full path of a bad field."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise SpecError(f"{path} must be a mapping")
        self.data, self.path = data, path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}"

    def sub(self, key: str, required: bool = False) -> _Reader | None:
        if key not in self.data:
            if required:
                raise SpecError(f"{self.at(key)} is required")
            return None
        return _Reader(self.data[key], self.at(key))

    def text(self, key: str, default: str | None = None, choices: tuple[str, ...] | None = None) -> str:
        value = self.data.get(key, default)
        if value is None:
            raise SpecError(f"{self.at(key)} is required")
        if not isinstance(value, str) or not value:
            raise SpecError(f"{self.at(key)} must be a non-empty string")
        if choices and value not in choices:
            raise SpecError(f"{self.at(key)} must be one of {', '.join(choices)}, not {value!r}")
        return value

    def number(self, key: str, default: float | None = None, minimum: float = 0) -> float:
        value = self.data.get(key, default)
        if value is None:
            raise SpecError(f"{self.at(key)} is required")
        # KEDA's metadata values are strings ("10"): accept numbers and numeric strings.
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None:
            raise SpecError(f"{self.at(key)} must be a number, not {value!r}")
        if number < minimum:
            raise SpecError(f"{self.at(key)} must be at least {minimum:g}, not {value!r}")
        return number

    def integer(self, key: str, default: int | None = None, minimum: int = 0) -> int:
        number = self.number(key, default, minimum)
        if number != int(number):
            raise SpecError(f"{self.at(key)} must be a whole number, not {self.data.get(key)!r}")
        return int(number)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise SpecError(f"{self.at(key)} must be true or false, not {value!r}")
        return value

    def check_known(self, known: set[str]) -> None:
        unknown = sorted(set(self.data) - known)
        if unknown:
            raise SpecError(f"{self.path} has unknown field(s): {', '.join(unknown)}")


def _credential(reader: _Reader, key: str) -> str | None:
    """`key` inline, or `keyFromEnv` (variable name), or `keyFromFile` (path)."""
    if key in reader.data:
        return reader.text(key)
    if f"{key}FromEnv" in reader.data:
        name = reader.text(f"{key}FromEnv")
        if name not in os.environ:
            raise SpecError(f"{reader.at(key + 'FromEnv')} names {name}, which is not set")
        return os.environ[name]
    if f"{key}FromFile" in reader.data:
        path = reader.text(f"{key}FromFile")
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise SpecError(f"{reader.at(key + 'FromFile')}: cannot read {path}: {exc.strerror}") from None
    return None


def _rules(reader: _Reader | None, default: ScalingRules) -> ScalingRules:
    if reader is None:
        return default
    reader.check_known({"stabilizationWindowSeconds", "selectPolicy", "policies"})
    window = reader.integer("stabilizationWindowSeconds", default.stabilization_window_seconds, 0)
    select = reader.text("selectPolicy", default.select_policy, ("Max", "Min", "Disabled"))
    policies = default.policies
    if "policies" in reader.data:
        raw = reader.data["policies"]
        if not isinstance(raw, list) or not raw:
            raise SpecError(f"{reader.at('policies')} must be a non-empty list")
        parsed = []
        for i, item in enumerate(raw):
            p = _Reader(item, f"{reader.at('policies')}[{i}]")
            p.check_known({"type", "value", "periodSeconds"})
            parsed.append(
                ScalingPolicy(
                    p.text("type", None, ("Pods", "Percent")),
                    p.integer("value", None, 1),
                    p.integer("periodSeconds", None, 1),
                )
            )
        policies = tuple(parsed)
    return ScalingRules(window, select, policies)


def _trigger(reader: _Reader) -> Trigger:
    reader.check_known({"type", "metadata", "name"})
    kind = reader.text("type")
    if kind != "rabbitmq":
        raise SpecError(f"{reader.at('type')} must be rabbitmq, not {kind!r}")
    m = reader.sub("metadata", required=True)
    assert m is not None
    m.check_known(
        {
            "mode",
            "value",
            "activationValue",
            "protocol",
            "queueName",
            "queueNameRegex",
            "useRegex",
            "operation",
            "excludeUnacknowledged",
            "vhostName",
            "host",
            "hostFromEnv",
            "hostFromFile",
            "username",
            "usernameFromEnv",
            "usernameFromFile",
            "password",
            "passwordFromEnv",
            "passwordFromFile",
        }
    )
    host = _credential(m, "host")
    if host is None:
        raise SpecError(f"{m.at('host')} (or hostFromEnv / hostFromFile) is required")
    protocol = m.text("protocol", "auto", ("auto", "http", "amqp"))
    if protocol == "auto":
        # KEDA's default (rabbitMQMetadata.Validate): the protocol follows the host's scheme.
        scheme = host.split("://", 1)[0].lower() if "://" in host else ""
        if scheme in ("amqp", "amqps"):
            protocol = "amqp"
        elif scheme in ("http", "https"):
            protocol = "http"
        else:
            raise SpecError(
                f"{m.at('host')} must start with amqp://, amqps://, http:// or https:// "
                "when protocol is auto (the default)"
            )
    mode = m.text("mode", "QueueLength", ("QueueLength", "MessageRate"))
    if mode == "MessageRate" and protocol != "http":
        raise SpecError(
            f"{m.at('mode')} MessageRate needs protocol http (the rate comes from the management API)"
        )
    use_regex = m.boolean("useRegex", False)
    queue_name = m.text("queueName") if not use_regex else None
    queue_regex = m.text("queueNameRegex", m.data.get("queueName")) if use_regex else None
    if queue_regex is not None:
        try:
            re.compile(queue_regex)
        except re.error as exc:
            raise SpecError(f"{m.at('queueNameRegex')} is not a valid regex: {exc}") from None
        if protocol != "http":
            raise SpecError(f"{m.at('useRegex')} needs protocol http")
    exclude_unacknowledged = m.boolean("excludeUnacknowledged", False)
    if exclude_unacknowledged and protocol != "http":
        raise SpecError(f"{m.at('excludeUnacknowledged')} needs protocol http")
    username, password = _credential(m, "username"), _credential(m, "password")
    if username is not None:
        # Credentials given apart from the URL replace any in it (passwords with @ : / # % need no escaping).
        scheme, rest = host.split("://", 1) if "://" in host else ("http", host)
        rest = rest.rsplit("@", 1)[-1]
        from urllib.parse import quote

        host = f"{scheme}://{quote(username, safe='')}:{quote(password or '', safe='')}@{rest}"
    return Trigger(
        mode=mode,
        value=m.number("value", None, 0.000001),
        activation_value=m.number("activationValue", 0, 0),
        protocol=protocol,
        queue_name=queue_name,
        queue_regex=queue_regex,
        operation=m.text("operation", "sum", ("sum", "max", "avg")),
        exclude_unacknowledged=exclude_unacknowledged,
        vhost=m.text("vhostName", "/"),
        host=host,
    )


def parse_scaled_object(data: Any, path: str) -> ScaledObject:
    r = _Reader(data, path)
    r.check_known(
        {
            "name",
            "scaleTargetRef",
            "pollingInterval",
            "cooldownPeriod",
            "initialCooldownPeriod",
            "minReplicaCount",
            "maxReplicaCount",
            "idleReplicaCount",
            "paused",
            "pausedReplicaCount",
            "fallback",
            "advanced",
            "triggers",
        }
    )
    target = r.sub("scaleTargetRef", required=True)
    assert target is not None
    target.check_known({"kind", "name", "command", "env", "apiVersion"})
    kind = target.text("kind", "Deployment", ("Deployment", "LocalProcessPool"))
    command: tuple[str, ...] = ()
    if kind == "LocalProcessPool":
        raw = target.data.get("command")
        if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
            raise SpecError(
                f"{target.at('command')} must be a non-empty list of strings for a LocalProcessPool"
            )
        command = tuple(raw)
    raw_env = target.data.get("env", {})
    if not isinstance(raw_env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw_env.items()
    ):
        raise SpecError(f"{target.at('env')} must map names to strings")
    min_replicas = r.integer("minReplicaCount", 0, 0)
    max_replicas = r.integer("maxReplicaCount", 100, 1)
    if max_replicas < min_replicas:
        raise SpecError(
            f"{r.at('maxReplicaCount')} ({max_replicas}) is below minReplicaCount ({min_replicas})"
        )
    idle_replicas = r.integer("idleReplicaCount", None, 0) if "idleReplicaCount" in r.data else None
    if idle_replicas is not None and idle_replicas >= min_replicas:
        # KEDA's CheckReplicaCountBoundsAreValid and the ScaledObject reference: idle < min.
        raise SpecError(
            f"{r.at('idleReplicaCount')} ({idle_replicas}) must be less than minReplicaCount ({min_replicas})"
        )
    fallback = None
    if (fb := r.sub("fallback")) is not None:
        fb.check_known({"failureThreshold", "replicas", "behavior"})
        fallback = Fallback(
            fb.integer("failureThreshold", None, 0),
            fb.integer("replicas", None, 0),
            fb.text(
                "behavior",
                "static",
                ("static", "currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower"),
            ),
        )
    behavior: Behavior | None = None
    if (advanced := r.sub("advanced")) is not None:
        advanced.check_known({"horizontalPodAutoscalerConfig"})
        if (hpa := advanced.sub("horizontalPodAutoscalerConfig")) is not None:
            hpa.check_known({"behavior"})
            if (raw_behavior := hpa.sub("behavior")) is not None:
                raw_behavior.check_known({"scaleUp", "scaleDown"})
                behavior = Behavior(
                    _rules(raw_behavior.sub("scaleUp"), DEFAULT_SCALE_UP),
                    _rules(raw_behavior.sub("scaleDown"), DEFAULT_SCALE_DOWN),
                )
    raw_triggers = r.data.get("triggers")
    if not isinstance(raw_triggers, list) or not raw_triggers:
        raise SpecError(f"{r.at('triggers')} must be a non-empty list")
    triggers = tuple(_trigger(_Reader(t, f"{r.at('triggers')}[{i}]")) for i, t in enumerate(raw_triggers))
    paused_replicas = r.integer("pausedReplicaCount", None, 0) if "pausedReplicaCount" in r.data else None
    return ScaledObject(
        name=r.text("name", target.text("name")),
        target_kind=kind,
        target_name=target.text("name"),
        target_command=command,
        target_env=tuple(sorted(raw_env.items())),
        polling_interval=r.number("pollingInterval", 30, 0.1),
        cooldown_period=r.number("cooldownPeriod", 300, 0),
        initial_cooldown_period=r.number("initialCooldownPeriod", 0, 0),
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        idle_replicas=idle_replicas,
        paused=r.boolean("paused", False),
        paused_replicas=paused_replicas,
        fallback=fallback,
        behavior=behavior,
        triggers=triggers,
    )


def parse_config(data: Any) -> list[ScaledObject]:
    root = _Reader(data, "config")
    root.check_known({"scaledObjects"})
    items = root.data.get("scaledObjects")
    if not isinstance(items, list) or not items:
        raise SpecError("config.scaledObjects must be a non-empty list")
    objects = [parse_scaled_object(item, f"scaledObjects[{i}]") for i, item in enumerate(items)]
    names = [o.name for o in objects]
    if len(set(names)) != len(names):
        raise SpecError(f"scaledObjects names must be unique: {names}")
    return objects


def load_config(path: str) -> list[ScaledObject]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SpecError(f"cannot read autoscaler config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path} is not valid YAML: {exc}") from None
    return parse_config(data)
