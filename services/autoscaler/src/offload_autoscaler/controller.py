"""The control loop: poll each scaled object on its own interval, decide, apply, report."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

from offload_autoscaler.decision import Decision, Observation, State, decide
from offload_autoscaler.sources import AmqpSource, ManagementApiSource, make_source
from offload_autoscaler.spec import ScaledObject
from offload_autoscaler.targets import ScaleTarget

log = logging.getLogger("offload.autoscaler")

METRIC_VALUE = Gauge(
    "offload_autoscaler_metric_value", "Last reading of a trigger.", ["scaled_object", "trigger"]
)
ACTIVE = Gauge(
    "offload_autoscaler_active", "1 if any trigger is above its activationValue.", ["scaled_object"]
)
DESIRED = Gauge("offload_autoscaler_desired_replicas", "Replicas the decision asked for.", ["scaled_object"])
CURRENT = Gauge("offload_autoscaler_current_replicas", "Replicas the target reported.", ["scaled_object"])
FALLBACK = Gauge("offload_autoscaler_fallback_active", "1 while fallback replicas apply.", ["scaled_object"])
ERRORS = Counter(
    "offload_autoscaler_errors_total", "Failed readings or scale calls.", ["scaled_object", "stage"]
)
SCALE_EVENTS = Counter(
    "offload_autoscaler_scale_events_total", "Replica changes applied.", ["scaled_object", "direction"]
)
POLL_DURATION = Histogram(
    "offload_autoscaler_poll_duration_seconds", "Time to read, decide and apply once.", ["scaled_object"]
)


@dataclass
class ScaledObjectController:
    spec: ScaledObject
    target: ScaleTarget
    sources: list[ManagementApiSource | AmqpSource]
    state: State
    last_decision: Decision | None = None

    @classmethod
    def create(cls, spec: ScaledObject, target: ScaleTarget, now: float) -> ScaledObjectController:
        # One source (session / connection) per broker address, shared by its triggers.
        by_host: dict[tuple[str, str], ManagementApiSource | AmqpSource] = {}
        sources = []
        for trigger in spec.triggers:
            key = (trigger.protocol, trigger.host)
            if key not in by_host:
                by_host[key] = make_source(trigger)
            sources.append(by_host[key])
        for stage in ("read", "target", "scale"):  # at 0 from the start, so rate() sees the first
            ERRORS.labels(spec.name, stage)
        for direction in ("up", "down"):
            SCALE_EVENTS.labels(spec.name, direction)
        return cls(spec, target, sources, State(created_at=now))

    def poll(self, now: float) -> Decision | None:
        name = self.spec.name
        started = time.monotonic()
        observations: list[Observation] = []
        for index, (trigger, source) in enumerate(zip(self.spec.triggers, self.sources, strict=True)):
            observation = source.read(trigger)
            observations.append(observation)
            if observation.error is not None:
                ERRORS.labels(name, "read").inc()
            else:
                METRIC_VALUE.labels(name, str(index)).set(observation.value or 0)
        try:
            current = self.target.current()
        except Exception as exc:
            ERRORS.labels(name, "target").inc()
            log.error("cannot read replicas", extra={"fields": {"scaled_object": name, "error": repr(exc)}})
            return None
        decision = decide(self.spec, self.state, observations, current, now)
        self.state, self.last_decision = decision.state, decision
        fields = {
            "scaled_object": name,
            "current": current,
            "desired": decision.desired,
            "active": decision.active,
            "fallback": decision.fallback,
            "readings": [o.value if o.error is None else f"error: {o.error}" for o in observations],
            "unacked": sum(o.unacked for o in observations),
            "reason": decision.reason,
        }
        if decision.desired != current:
            try:
                self.target.scale(decision.desired)
            except Exception as exc:
                ERRORS.labels(name, "scale").inc()
                log.error("scale call failed", extra={"fields": fields | {"error": repr(exc)}})
                return decision
            SCALE_EVENTS.labels(name, "up" if decision.desired > current else "down").inc()
            log.info("scaled", extra={"fields": fields})
        else:
            log.debug("no change", extra={"fields": fields})
        ACTIVE.labels(name).set(1 if decision.active else 0)
        DESIRED.labels(name).set(decision.desired)
        CURRENT.labels(name).set(decision.desired)  # applied above, or already the count
        FALLBACK.labels(name).set(1 if decision.fallback else 0)
        POLL_DURATION.labels(name).observe(time.monotonic() - started)
        return decision


class Autoscaler:
    """Polls every scaled object on its interval; with leader election, only while leading."""

    def __init__(
        self, controllers: list[ScaledObjectController], is_leader: Callable[[], bool] | None = None
    ) -> None:
        self.controllers = controllers
        self.is_leader = is_leader
        self._stop = threading.Event()
        self.ready = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        next_poll = {id(c): 0.0 for c in self.controllers}
        while not self._stop.is_set():
            now = time.monotonic()
            if self.is_leader is not None and not self.is_leader():
                # A standby polls nothing; once it leads, every object is polled at once.
                next_poll = dict.fromkeys(next_poll, 0.0)
                self.ready.set()
                self._stop.wait(0.5)
                continue
            for controller in self.controllers:
                if now >= next_poll[id(controller)]:
                    controller.poll(time.monotonic())
                    next_poll[id(controller)] = now + controller.spec.polling_interval
            self.ready.set()
            self._stop.wait(max(0.0, min(next_poll.values()) - time.monotonic()))
