"""A private Prometheus (Debian's) for one test, scraping the given targets every second."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from offload_testkit.processes import free_port


class PrivatePrometheus:
    def __init__(
        self, workdir: Path, jobs: list[dict[str, Any]], rule_files: list[str] | None = None
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": rule_files or [],
            "scrape_configs": jobs,
        }
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrivatePrometheus:
        log = (self.workdir / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/-/ready", timeout=1).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(
            "prometheus did not become ready:\n" + (self.workdir / "prometheus.log").read_text()[-3000:]
        )

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10).json()
        if body.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {body}")
        return body["data"]["result"]

    def by_label(self, expr: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr)}

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(15)


def job(
    name: str, port: int, path: str = "/metrics", params: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "job_name": name,
        "metrics_path": path,
        "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
    }
    if params:
        entry["params"] = params
    return entry
