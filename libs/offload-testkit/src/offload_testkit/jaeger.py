"""A private Jaeger v2 (built by scripts/release-tools.sh): OTLP/HTTP in, traces in memory,
its query API out, each on a port of its own on loopback."""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from offload_testkit.processes import ServiceProcess, free_port

JAEGER_BIN = Path(os.environ.get("OFFLOAD_RELEASE_TOOLS", "/var/cache/offload/release-tools")) / "bin/jaeger"

# The repository's own config (the one `make dev` runs), found from this package's checkout.
CONFIG = Path(__file__).resolve().parents[4] / "deploy" / "jaeger" / "local.yaml"


@dataclass(frozen=True)
class SpanRecord:
    """One span as the query API reports it, with what the checks need by name."""

    trace_id: str
    span_id: str
    parent_id: str | None
    service: str
    name: str
    kind: str
    attributes: dict[str, Any]
    links: tuple[tuple[str, str], ...]  # (trace id, span id) of each link


class PrivateJaeger:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.otlp_port = free_port()
        self.query_port = free_port(other_than=[self.otlp_port])
        self.health_port = free_port(other_than=[self.otlp_port, self.query_port])
        self.query_grpc_port = free_port(other_than=[self.otlp_port, self.query_port, self.health_port])
        self.process: ServiceProcess | None = None

    @property
    def otlp_endpoint(self) -> str:
        """For OTEL_EXPORTER_OTLP_ENDPOINT (the exporter adds /v1/traces)."""
        return f"http://127.0.0.1:{self.otlp_port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"

    def start(self, timeout: float = 30.0) -> PrivateJaeger:
        if not JAEGER_BIN.exists():
            raise RuntimeError(f"{JAEGER_BIN} is missing: run scripts/release-tools.sh")
        env = {
            # Jaeger traces itself to localhost:4317 unless told not to.
            "OTEL_SDK_DISABLED": "true",
            "OTEL_TRACES_EXPORTER": "none",
            "OFFLOAD_JAEGER_OTLP_ADDRESS": f"127.0.0.1:{self.otlp_port}",
            "OFFLOAD_JAEGER_QUERY_ADDRESS": f"127.0.0.1:{self.query_port}",
            "OFFLOAD_JAEGER_QUERY_GRPC_ADDRESS": f"127.0.0.1:{self.query_grpc_port}",
            "OFFLOAD_JAEGER_HEALTH_ADDRESS": f"127.0.0.1:{self.health_port}",
        }
        self.process = ServiceProcess(
            [str(JAEGER_BIN), "--config", f"file:{CONFIG}"],
            env=env,
            log_path=self.workdir / "jaeger.log",
            health_url=f"http://127.0.0.1:{self.health_port}/status",
        ).start(timeout)
        return self

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):  # killed after 10 s
                self.process.terminate(timeout=10)

    def trace(self, trace_id: str) -> list[SpanRecord]:
        """Every span of one trace (empty while it is unknown)."""
        answer = requests.get(f"{self.ui_url}/api/traces/{trace_id}", timeout=5)
        if answer.status_code == 404:
            return []
        answer.raise_for_status()
        return [span for data in answer.json().get("data") or [] for span in _spans(data)]

    def traces(self, service: str, limit: int = 100) -> list[list[SpanRecord]]:
        answer = requests.get(
            f"{self.ui_url}/api/traces",
            params={"service": service, "limit": str(limit), "lookback": "1h"},
            timeout=5,
        )
        answer.raise_for_status()
        return [_spans(data) for data in answer.json().get("data") or []]


def _spans(data: dict[str, Any]) -> list[SpanRecord]:
    """Jaeger's JSON trace: spans with references, and a process (the service) per span."""
    processes = {key: p["serviceName"] for key, p in data.get("processes", {}).items()}
    records = []
    for span in data.get("spans", []):
        tags = {tag["key"]: tag["value"] for tag in span.get("tags", [])}
        parent = None
        links = []
        for ref in span.get("references", []):
            if ref["refType"] == "CHILD_OF" and ref["traceID"] == span["traceID"] and parent is None:
                parent = ref["spanID"]
            else:
                links.append((ref["traceID"], ref["spanID"]))
        records.append(
            SpanRecord(
                trace_id=span["traceID"],
                span_id=span["spanID"],
                parent_id=parent,
                service=processes.get(span["processID"], "?"),
                name=span["operationName"],
                kind=str(tags.get("span.kind", "internal")),
                attributes=tags,
                links=tuple(links),
            )
        )
    return records
