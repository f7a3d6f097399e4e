"""ScaledObject-like specs with KEDA's field names, parsed and checked at start.

A config file (YAML or JSON) holds `scaledObjects: [...]`; every mistake is reported
with the path of the field, e.g. `scaledObjects[0].triggers[0].metadata.value`.
"""

from __future__ import annotations

import os
import re
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import yaml

from offload_core.settings import without_none


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


# -- declared fields (the shape of KEDA's typed scaler config) --------------------------
#
# Each section of the config is a dataclass whose fields name their key, default, bounds and
# choices, as KEDA's scalers declare theirs with `keda:"name=...,default=...,enum=..."` tags
# (pkg/scalers/scalersconfig/typed_config.go, TypedConfig). One reader fills any of them,
# and the keys a section accepts come from its declaration: nobody lists them by hand.

REQUIRED: Any = object()


def key(
    name: str,
    default: Any = REQUIRED,
    *,
    minimum: float = 0,
    choices: tuple[str, ...] | None = None,
    credential: bool = False,
) -> Any:
    """A field read from `name`; `credential`: also from `nameFromEnv` or `nameFromFile`."""
    metadata = {"key": name, "default": default, "minimum": minimum, "choices": choices}
    metadata["credential"] = credential
    return field(default=None if default is REQUIRED else default, metadata=metadata)


def section(name: str) -> Any:
    """A nested mapping or list the caller reads itself; declared so it is a known key."""
    return field(default=None, metadata={"key": name, "section": True})


def known_keys(cls: type) -> set[str]:
    keys = set()
    for f in fields(cls):
        if "key" in f.metadata:
            keys.add(f.metadata["key"])
            if f.metadata.get("credential"):
                keys |= {f.metadata["key"] + "FromEnv", f.metadata["key"] + "FromFile"}
    return keys


Declared = TypeVar("Declared")


def read_declared(cls: type[Declared], reader: _Reader, **defaults: Any) -> Declared:
    """`cls` filled from `reader`, in declaration order (so the first bad field is reported);
    `defaults` override declared defaults (the HPA's scale-up and scale-down differ)."""
    reader.check_known(known_keys(cls))
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]  # cls is a dataclass; the TypeVar hides it
        meta = f.metadata
        if "key" not in meta or meta.get("section"):
            continue
        name, default = meta["key"], defaults.get(f.name, meta["default"])
        if meta["credential"]:
            values[f.name] = _credential(reader, name)
            continue
        if default is None and name not in reader.data:
            values[f.name] = None
            continue
        wanted, given = without_none(hints[f.name]), None if default is REQUIRED else default
        if wanted is bool:
            values[f.name] = reader.boolean(name, bool(given))
        elif wanted is int:
            values[f.name] = reader.integer(name, given, int(meta["minimum"]))
        elif wanted is float:
            values[f.name] = reader.number(name, given, meta["minimum"])
        else:
            values[f.name] = reader.text(name, given, meta["choices"])
    return cls(**values)


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


@dataclass(frozen=True)
class _PolicyFields:
    type: str = key("type", choices=("Pods", "Percent"))
    value: int = key("value", minimum=1)
    period_seconds: int = key("periodSeconds", minimum=1)


@dataclass(frozen=True)
class _RulesFields:
    stabilization_window_seconds: int = key("stabilizationWindowSeconds", 0)
    select_policy: str = key("selectPolicy", "Max", choices=("Max", "Min", "Disabled"))
    policies: None = section("policies")


def _rules(reader: _Reader | None, default: ScalingRules) -> ScalingRules:
    if reader is None:
        return default
    rules = read_declared(
        _RulesFields,
        reader,
        stabilization_window_seconds=default.stabilization_window_seconds,
        select_policy=default.select_policy,
    )
    policies = default.policies
    if "policies" in reader.data:
        raw = reader.data["policies"]
        if not isinstance(raw, list) or not raw:
            raise SpecError(f"{reader.at('policies')} must be a non-empty list")
        parsed = [
            read_declared(_PolicyFields, _Reader(item, f"{reader.at('policies')}[{i}]"))
            for i, item in enumerate(raw)
        ]
        policies = tuple(ScalingPolicy(p.type, p.value, p.period_seconds) for p in parsed)
    return ScalingRules(rules.stabilization_window_seconds, rules.select_policy, policies)


@dataclass(frozen=True)
class _RabbitMQMetadata:
    """A rabbitmq trigger's metadata: the subset of KEDA's rabbitMQMetadata we support."""

    mode: str = key("mode", "QueueLength", choices=("QueueLength", "MessageRate"))
    value: float = key("value", minimum=0.000001)
    activation_value: float = key("activationValue", 0.0)
    protocol: str = key("protocol", "auto", choices=("auto", "http", "amqp"))
    use_regex: bool = key("useRegex", False)
    queue_name: str | None = key("queueName", None)
    queue_regex: str | None = key("queueNameRegex", None)
    operation: str = key("operation", "sum", choices=("sum", "max", "avg"))
    exclude_unacknowledged: bool = key("excludeUnacknowledged", False)
    vhost: str = key("vhostName", "/")
    host: str | None = key("host", None, credential=True)
    username: str | None = key("username", None, credential=True)
    password: str | None = key("password", None, credential=True)


@dataclass(frozen=True)
class _TriggerFields:
    type: str = key("type")
    name: str | None = key("name", None)
    metadata: None = section("metadata")


def _trigger(reader: _Reader) -> Trigger:
    kind = read_declared(_TriggerFields, reader).type
    if kind != "rabbitmq":
        raise SpecError(f"{reader.at('type')} must be rabbitmq, not {kind!r}")
    m = reader.sub("metadata", required=True)
    assert m is not None
    meta = read_declared(_RabbitMQMetadata, m)
    return _checked_trigger(meta, m)


def _checked_trigger(meta: _RabbitMQMetadata, m: _Reader) -> Trigger:
    """The rules between fields, and KEDA's resolution of `auto` and of credentials."""
    host = meta.host
    if host is None:
        raise SpecError(f"{m.at('host')} (or hostFromEnv / hostFromFile) is required")
    protocol = meta.protocol
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
    if meta.mode == "MessageRate" and protocol != "http":
        raise SpecError(
            f"{m.at('mode')} MessageRate needs protocol http (the rate comes from the management API)"
        )
    queue_name, queue_regex = meta.queue_name, None
    if not meta.use_regex and queue_name is None:
        raise SpecError(f"{m.at('queueName')} is required")
    if meta.use_regex:
        # KEDA reads the pattern from queueName when queueNameRegex is not given.
        queue_name, queue_regex = None, meta.queue_regex or meta.queue_name
        if queue_regex is None:
            raise SpecError(f"{m.at('queueNameRegex')} is required")
        try:
            re.compile(queue_regex)
        except re.error as exc:
            raise SpecError(f"{m.at('queueNameRegex')} is not a valid regex: {exc}") from None
        if protocol != "http":
            raise SpecError(f"{m.at('useRegex')} needs protocol http")
    if meta.exclude_unacknowledged and protocol != "http":
        raise SpecError(f"{m.at('excludeUnacknowledged')} needs protocol http")
    if meta.username is not None:
        # Credentials given apart from the URL replace any in it (passwords with @ : / # % need no escaping).
        scheme, rest = host.split("://", 1) if "://" in host else ("http", host)
        rest = rest.rsplit("@", 1)[-1]
        host = f"{scheme}://{quote(meta.username, safe='')}:{quote(meta.password or '', safe='')}@{rest}"
    return Trigger(
        mode=meta.mode,
        value=meta.value,
        activation_value=meta.activation_value,
        protocol=protocol,
        queue_name=queue_name,
        queue_regex=queue_regex,
        operation=meta.operation,
        exclude_unacknowledged=meta.exclude_unacknowledged,
        vhost=meta.vhost,
        host=host,
    )


FALLBACK_BEHAVIORS = ("static", "currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower")


@dataclass(frozen=True)
class _FallbackFields:
    failure_threshold: int = key("failureThreshold")
    replicas: int = key("replicas")
    behavior: str = key(
        "behavior",
        "static",
        choices=("static", "currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower"),
    )


@dataclass(frozen=True)
class _TargetFields:
    kind: str = key("kind", "Deployment", choices=("Deployment", "LocalProcessPool"))
    name: str = key("name")
    api_version: str | None = key("apiVersion", None)
    command: None = section("command")
    env: None = section("env")


@dataclass(frozen=True)
class _ScaledObjectFields:
    name: str | None = key("name", None)
    polling_interval: float = key("pollingInterval", 30.0, minimum=0.1)
    cooldown_period: float = key("cooldownPeriod", 300.0)
    initial_cooldown_period: float = key("initialCooldownPeriod", 0.0)
    min_replicas: int = key("minReplicaCount", 0)
    max_replicas: int = key("maxReplicaCount", 100, minimum=1)
    idle_replicas: int | None = key("idleReplicaCount", None)
    paused: bool = key("paused", False)
    paused_replicas: int | None = key("pausedReplicaCount", None)
    scale_target_ref: None = section("scaleTargetRef")
    fallback: None = section("fallback")
    advanced: None = section("advanced")
    triggers: None = section("triggers")


def parse_scaled_object(data: Any, path: str) -> ScaledObject:
    r = _Reader(data, path)
    r.check_known(known_keys(_ScaledObjectFields))
    target = r.sub("scaleTargetRef", required=True)
    assert target is not None
    ref = read_declared(_TargetFields, target)
    command: tuple[str, ...] = ()
    if ref.kind == "LocalProcessPool":
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
    so = read_declared(_ScaledObjectFields, r)
    if so.max_replicas < so.min_replicas:
        raise SpecError(
            f"{r.at('maxReplicaCount')} ({so.max_replicas}) is below minReplicaCount ({so.min_replicas})"
        )
    if so.idle_replicas is not None and so.idle_replicas >= so.min_replicas:
        # KEDA's CheckReplicaCountBoundsAreValid and the ScaledObject reference: idle < min.
        raise SpecError(
            f"{r.at('idleReplicaCount')} ({so.idle_replicas}) must be less than "
            f"minReplicaCount ({so.min_replicas})"
        )
    fallback = None
    if (fb := r.sub("fallback")) is not None:
        declared = read_declared(_FallbackFields, fb)
        fallback = Fallback(declared.failure_threshold, declared.replicas, declared.behavior)
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
    return ScaledObject(
        name=so.name or ref.name,
        target_kind=ref.kind,
        target_name=ref.name,
        target_command=command,
        target_env=tuple(sorted(raw_env.items())),
        polling_interval=so.polling_interval,
        cooldown_period=so.cooldown_period,
        initial_cooldown_period=so.initial_cooldown_period,
        min_replicas=so.min_replicas,
        max_replicas=so.max_replicas,
        idle_replicas=so.idle_replicas,
        paused=so.paused,
        paused_replicas=so.paused_replicas,
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
