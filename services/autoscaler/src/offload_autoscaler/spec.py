"""ScaledObject-like specs with KEDA's field names, parsed and checked at start.

A config file (YAML or JSON) holds `scaledObjects: [...]`; every mistake is reported
with the path of the field, e.g. `scaledObjects[0].triggers[0].metadata.value`.

Each section is one dataclass that is both the declaration of its keys (name, default,
bounds, choices) and the parsed value, as KEDA's `rabbitMQMetadata` is both its
`keda:"name=...,default=...,enum=..."` tags and the scaler's config
(pkg/scalers/scalersconfig/typed_config.go, TypedConfig); the rules between fields are
its `validate()`, as KEDA's are `rabbitMQMetadata.Validate`. Values are read by the core's
one field reader (offload_core.fields), the one the services' settings use, and the keys
a section accepts come from its declaration: nobody lists them by hand.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import yaml

from offload_core.fields import REQUIRED, FieldSpec, convert, declare, declared, problem, type_hints


class SpecError(ValueError):
    """The config cannot be used; the message names the field."""


def key(
    name: str,
    default: Any = REQUIRED,
    *,
    minimum: float = 0,
    choices: tuple[str, ...] | None = None,
    credential: bool = False,
) -> Any:
    """A field read from key `name` (numbers at least 0 unless said); a `credential` may
    also come from `nameFromEnv` (a variable's name) or `nameFromFile` (a path)."""
    return declare(name, default, minimum=minimum, choices=choices, credential=credential)


def section(name: str, default: Any = None) -> Any:
    """A nested mapping or list its owner reads; declared so it is a known key."""
    return declare(name, default, section=True)


class _Reader:
    """A mapping of the config and its path, for errors that name the field."""

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

    def items(self, key: str) -> list[_Reader]:
        """The mappings of the non-empty list at `key`."""
        raw = self.data.get(key)
        if not isinstance(raw, list) or not raw:
            raise SpecError(f"{self.at(key)} must be a non-empty list")
        return [_Reader(item, f"{self.at(key)}[{i}]") for i, item in enumerate(raw)]

    def check_known(self, known: set[str]) -> None:
        unknown = sorted(set(self.data) - known)
        if unknown:
            raise SpecError(f"{self.path} has unknown field(s): {', '.join(unknown)}")


def known_keys(cls: type) -> set[str]:
    keys = set()
    for _, spec in declared(cls):
        keys.add(spec.name)
        if spec.credential:
            keys |= {spec.name + "FromEnv", spec.name + "FromFile"}
    return keys


Declared = TypeVar("Declared")


def read_declared(cls: type[Declared], reader: _Reader, **defaults: Any) -> Declared:
    """`cls` filled from `reader` in declaration order (so the first bad field is reported),
    sections left at their defaults for the caller; `defaults` override declared defaults
    (the HPA's scale-up and scale-down differ)."""
    reader.check_known(known_keys(cls))
    hints = type_hints(cls)
    values: dict[str, Any] = {}
    for f, spec in declared(cls):
        if spec.section:
            continue
        if spec.credential:
            values[f.name] = _credential(reader, spec)
            continue
        default = defaults.get(f.name, spec.default)
        if spec.name not in reader.data:
            if default is REQUIRED:
                raise SpecError(f"{reader.at(spec.name)} is required")
            values[f.name] = default
            continue
        values[f.name] = _value(reader, spec, hints[f.name])
    return cls(**values)


def _value(reader: _Reader, spec: FieldSpec, hint: Any) -> Any:
    raw = reader.data[spec.name]
    try:
        return convert(spec, hint, raw)
    except ValueError as exc:
        raise SpecError(problem(reader.at(spec.name), spec, raw, exc)) from None


def _credential(reader: _Reader, spec: FieldSpec) -> str | None:
    """The key inline, or `keyFromEnv` (variable name), or `keyFromFile` (path)."""
    text = FieldSpec(spec.name)  # the name of a variable or a file is no secret
    if spec.name in reader.data:
        return str(_value(reader, spec, str))
    if f"{spec.name}FromEnv" in reader.data:
        name = _value(reader, replace(text, name=f"{spec.name}FromEnv"), str)
        if name not in os.environ:
            raise SpecError(f"{reader.at(spec.name + 'FromEnv')} names {name}, which is not set")
        return os.environ[name]
    if f"{spec.name}FromFile" in reader.data:
        path = _value(reader, replace(text, name=f"{spec.name}FromFile"), str)
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise SpecError(
                f"{reader.at(spec.name + 'FromFile')}: cannot read {path}: {exc.strerror}"
            ) from None
    return None


@dataclass(frozen=True)
class ScalingPolicy:
    type: str = key("type", choices=("Pods", "Percent"))
    value: int = key("value", minimum=1)
    period_seconds: int = key("periodSeconds", minimum=1)


@dataclass(frozen=True)
class ScalingRules:
    stabilization_window_seconds: int = key("stabilizationWindowSeconds", 0)
    select_policy: str = key("selectPolicy", "Max", choices=("Max", "Min", "Disabled"))
    policies: tuple[ScalingPolicy, ...] = section("policies", ())

    @classmethod
    def read(cls, reader: _Reader | None, default: ScalingRules) -> ScalingRules:
        """One side of a behavior; what it leaves out comes from `default`."""
        if reader is None:
            return default
        rules = read_declared(
            cls,
            reader,
            stabilization_window_seconds=default.stabilization_window_seconds,
            select_policy=default.select_policy,
        )
        policies = default.policies
        if "policies" in reader.data:
            policies = tuple(read_declared(ScalingPolicy, item) for item in reader.items("policies"))
        return replace(rules, policies=policies)


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

    @classmethod
    def read(cls, advanced: _Reader | None) -> Behavior | None:
        if advanced is None:
            return None
        advanced.check_known({"horizontalPodAutoscalerConfig"})
        if (hpa := advanced.sub("horizontalPodAutoscalerConfig")) is None:
            return None
        hpa.check_known({"behavior"})
        if (behavior := hpa.sub("behavior")) is None:
            return None
        behavior.check_known({"scaleUp", "scaleDown"})
        return cls(
            ScalingRules.read(behavior.sub("scaleUp"), DEFAULT_SCALE_UP),
            ScalingRules.read(behavior.sub("scaleDown"), DEFAULT_SCALE_DOWN),
        )


@dataclass(frozen=True)
class Trigger:
    """A rabbitmq trigger's metadata: the subset of KEDA's rabbitMQMetadata we support.
    After `validate`, `protocol` is http or amqp (KEDA's auto resolved from the host's
    scheme), exactly one of `queue_name` and `queue_regex` is set, and `host` carries the
    credentials (`username` and `password` are then None)."""

    # ExpectedWaitTime: `value` is the seconds a message arriving now may wait (wait_time.py).
    mode: str = key("mode", "QueueLength", choices=("QueueLength", "MessageRate", "ExpectedWaitTime"))
    value: float = key("value", minimum=0.000001)
    activation_value: float = key("activationValue", 0.0)
    protocol: str = key("protocol", "auto", choices=("auto", "http", "amqp"))
    use_regex: bool = key("useRegex", False)
    queue_name: str | None = key("queueName", None)
    queue_regex: str | None = key("queueNameRegex", None)
    operation: str = key("operation", "sum", choices=("sum", "max", "avg"))
    exclude_unacknowledged: bool = key("excludeUnacknowledged", False)
    vhost: str = key("vhostName", "/")
    host: str = key("host", None, credential=True)
    username: str | None = key("username", None, credential=True)
    password: str | None = key("password", None, credential=True)
    # ExpectedWaitTime: messages per second one replica settles, until the queue shows it.
    initial_throughput: float = key("initialThroughput", 1.0, minimum=0.001)

    @classmethod
    def read(cls, reader: _Reader) -> Trigger:
        kind = read_declared(_TriggerRef, reader).type
        if kind != "rabbitmq":
            raise SpecError(f"{reader.at('type')} must be rabbitmq, not {kind!r}")
        metadata = reader.sub("metadata", required=True)
        assert metadata is not None
        return read_declared(cls, metadata).validate(metadata.path)

    def validate(self, path: str) -> Trigger:
        """The rules between fields, and KEDA's resolution of `auto` and of credentials
        (rabbitMQMetadata.Validate); `path` is the metadata's, for errors."""
        if self.host is None:
            raise SpecError(f"{path}.host (or hostFromEnv / hostFromFile) is required")
        protocol = self.protocol
        if protocol == "auto":
            scheme = self.host.split("://", 1)[0].lower() if "://" in self.host else ""
            if scheme in ("amqp", "amqps"):
                protocol = "amqp"
            elif scheme in ("http", "https"):
                protocol = "http"
            else:
                raise SpecError(
                    f"{path}.host must start with amqp://, amqps://, http:// or https:// "
                    "when protocol is auto (the default)"
                )
        if self.mode in ("MessageRate", "ExpectedWaitTime") and protocol != "http":
            raise SpecError(
                f"{path}.mode {self.mode} needs protocol http (its rates come from the management API)"
            )
        queue_name, queue_regex = self.queue_name, None
        if not self.use_regex and queue_name is None:
            raise SpecError(f"{path}.queueName is required")
        if self.use_regex:
            # KEDA reads the pattern from queueName when queueNameRegex is not given.
            queue_name, queue_regex = None, self.queue_regex or self.queue_name
            if queue_regex is None:
                raise SpecError(f"{path}.queueNameRegex is required")
            try:
                re.compile(queue_regex)
            except re.error as exc:
                raise SpecError(f"{path}.queueNameRegex is not a valid regex: {exc}") from None
            if protocol != "http":
                raise SpecError(f"{path}.useRegex needs protocol http")
        if self.exclude_unacknowledged and protocol != "http":
            raise SpecError(f"{path}.excludeUnacknowledged needs protocol http")
        host = self.host
        if self.username is not None:
            # Credentials given apart from the URL replace any in it (no escaping needed).
            scheme, rest = host.split("://", 1) if "://" in host else ("http", host)
            rest = rest.rsplit("@", 1)[-1]
            user, password = quote(self.username, safe=""), quote(self.password or "", safe="")
            host = f"{scheme}://{user}:{password}@{rest}"
        return replace(
            self,
            protocol=protocol,
            queue_name=queue_name,
            queue_regex=queue_regex,
            host=host,
            username=None,
            password=None,
        )


def trigger_from_metadata(metadata: dict[str, Any], path: str = "metadata") -> Trigger:
    """A trigger from its metadata alone (what KEDA hands an external scaler), checked as
    in a ScaledObject; errors name the key under `path`."""
    return read_declared(Trigger, _Reader(metadata, path)).validate(path)


@dataclass(frozen=True)
class _TriggerRef:
    """The keys around a trigger's metadata."""

    type: str = key("type")
    name: str | None = key("name", None)
    metadata: None = section("metadata")


@dataclass(frozen=True)
class Fallback:
    failure_threshold: int = key("failureThreshold")
    replicas: int = key("replicas")
    behavior: str = key(
        "behavior",
        "static",
        choices=("static", "currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower"),
    )


@dataclass(frozen=True)
class TargetRef:
    """scaleTargetRef: a Deployment (the cluster), or a pool of local processes (make dev,
    tests and benchmarks)."""

    kind: str = key("kind", "Deployment", choices=("Deployment", "LocalProcessPool"))
    name: str = key("name")
    api_version: str = key("apiVersion", "apps/v1", choices=("apps/v1",))  # only Deployments scale
    command: tuple[str, ...] = section("command", ())
    env: tuple[tuple[str, str], ...] = section("env", ())

    @classmethod
    def read(cls, reader: _Reader) -> TargetRef:
        ref = read_declared(cls, reader)
        command: tuple[str, ...] = ()
        if ref.kind == "LocalProcessPool":
            raw = reader.data.get("command")
            if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
                raise SpecError(
                    f"{reader.at('command')} must be a non-empty list of strings for a LocalProcessPool"
                )
            command = tuple(raw)
        env = reader.data.get("env", {})
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise SpecError(f"{reader.at('env')} must map names to strings")
        return replace(ref, command=command, env=tuple(sorted(env.items())))


@dataclass(frozen=True)
class ScaledObject:
    """One scaledObjects entry; after `read`, `name` is set (the target's name by default)."""

    name: str = key("name", None)
    polling_interval: float = key("pollingInterval", 30.0, minimum=0.1)
    cooldown_period: float = key("cooldownPeriod", 300.0)
    initial_cooldown_period: float = key("initialCooldownPeriod", 0.0)
    min_replicas: int = key("minReplicaCount", 0)
    max_replicas: int = key("maxReplicaCount", 100, minimum=1)
    idle_replicas: int | None = key("idleReplicaCount", None)
    paused: bool = key("paused", False)
    paused_replicas: int | None = key("pausedReplicaCount", None)
    target: TargetRef = section("scaleTargetRef")
    fallback: Fallback | None = section("fallback")
    # None: no behavior given, so KEDA creates its HPA without one, and the HPA's older
    # rules apply (at most double or +4 per reconcile up, a 300 s window down, no down rate).
    behavior: Behavior | None = section("advanced")
    triggers: tuple[Trigger, ...] = section("triggers", ())

    @classmethod
    def read(cls, reader: _Reader) -> ScaledObject:
        reader.check_known(known_keys(cls))
        target_reader = reader.sub("scaleTargetRef", required=True)
        assert target_reader is not None
        target = TargetRef.read(target_reader)
        declared_fields = read_declared(cls, reader)
        fallback = reader.sub("fallback")
        scaled = replace(
            declared_fields,
            name=declared_fields.name or target.name,
            target=target,
            fallback=None if fallback is None else read_declared(Fallback, fallback),
            behavior=Behavior.read(reader.sub("advanced")),
            triggers=tuple(Trigger.read(item) for item in reader.items("triggers")),
        )
        return scaled.validate(reader)

    def validate(self, reader: _Reader) -> ScaledObject:
        if self.max_replicas < self.min_replicas:
            raise SpecError(
                f"{reader.at('maxReplicaCount')} ({self.max_replicas}) is below "
                f"minReplicaCount ({self.min_replicas})"
            )
        if self.idle_replicas is not None and self.idle_replicas >= self.min_replicas:
            # KEDA's CheckReplicaCountBoundsAreValid and the ScaledObject reference: idle < min.
            raise SpecError(
                f"{reader.at('idleReplicaCount')} ({self.idle_replicas}) must be less than "
                f"minReplicaCount ({self.min_replicas})"
            )
        return self


def parse_scaled_object(data: Any, path: str) -> ScaledObject:
    return ScaledObject.read(_Reader(data, path))


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
