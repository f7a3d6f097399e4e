"""Start Offload's services as real processes for tests, each answering on its own port."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from offload_testkit.processes import ServiceProcess, free_port


class Service:
    def __init__(self, process: ServiceProcess, url: str, status_url: str | None = None) -> None:
        self.process = process
        self.url = url  # base URL of its HTTP port (web, stats API) or status port (runners)
        self.port = int(url.rsplit(":", 1)[1])
        self.address = (url.removeprefix("http://").rsplit(":", 1)[0], self.port)  # for raw sockets
        # /metrics, /healthz, /readyz: a gunicorn service's status port, a runner's only port
        self.status_url = status_url or url
        self.status_port = int(self.status_url.rsplit(":", 1)[1])

    def terminate(self) -> int:
        return self.process.terminate()

    def kill(self) -> None:
        self.process.kill()

    @property
    def pid(self) -> int:
        assert self.process.process is not None
        return self.process.process.pid


def _start(
    argv: list[str],
    env: Mapping[str, str],
    log: Path,
    port: int,
    ready_path: str,
    status_port: int | None = None,
) -> Service:
    url = f"http://127.0.0.1:{port}"
    status_url = f"http://127.0.0.1:{status_port}" if status_port else url
    process = ServiceProcess(argv, env=dict(env), log_path=log, health_url=status_url + ready_path).start()
    return Service(process, url, status_url)


def _start_gunicorn(
    service: str,
    bind_variable: str,
    status_port_variable: str | None,
    env: Mapping[str, str],
    workdir: Path,
    name: str,
    config: str | None = None,
) -> Service:
    port = free_port()
    metrics = workdir / f"{name}-metrics"
    metrics.mkdir(parents=True, exist_ok=True)
    config = config or f"python:{service}.gunicorn_conf"
    argv = [sys.executable, "-m", "gunicorn", "-c", config, f"{service}.wsgi:app"]
    env = {bind_variable: f"127.0.0.1:{port}", "PROMETHEUS_MULTIPROC_DIR": str(metrics), **env}
    status_port = None
    if status_port_variable:
        status_port = int(env.get(status_port_variable) or free_port())
        env = {**env, status_port_variable: str(status_port)}
    return _start(argv, env, workdir / f"{name}.log", port, "/readyz", status_port)


# Tests and benchmarks drive many signups from one address to one domain: the web's rate
# limits are off unless a test sets them (services/web/tests/test_rate_limits.py does).
# The batch import is on, with this token.
IMPORT_TOKEN = "offload-test-import-token-0123456789abcdef"
IMPORT_HEADERS = {"Authorization": f"Bearer {IMPORT_TOKEN}"}
TEST_WEB_ENV = {
    "OFFLOAD_WEB_WORKERS": "2",
    "OFFLOAD_WEB_SIGNUP_LIMIT_PER_CLIENT": "off",
    "OFFLOAD_WEB_SIGNUP_LIMIT_PER_DOMAIN": "off",
    "OFFLOAD_WEB_BATCH_TOKEN": IMPORT_TOKEN,
}


def start_web(env: Mapping[str, str], workdir: Path, name: str = "web", config: str | None = None) -> Service:
    """The web under gunicorn with its own settings (or `config`, a gunicorn -c argument)."""
    return _start_gunicorn(
        "offload_web",
        "OFFLOAD_WEB_BIND",
        "OFFLOAD_WEB_STATUS_PORT",
        {**TEST_WEB_ENV, **env},
        workdir,
        name,
        config,
    )


def start_mailer(
    env: Mapping[str, str], workdir: Path, name: str = "mailer", argv: list[str] | None = None
) -> Service:
    """The mailer (or, with `argv`, a variant of it from tests.chaos.broken)."""
    port = free_port()
    argv = argv or [sys.executable, "-m", "offload_mailer.main"]
    return _start(
        argv, {"OFFLOAD_MAILER_STATUS_PORT": str(port), **env}, workdir / f"{name}.log", port, "/readyz"
    )


def start_stats_runner(
    env: Mapping[str, str], workdir: Path, name: str = "stats", argv: list[str] | None = None
) -> Service:
    port = free_port()
    argv = argv or [sys.executable, "-m", "offload_stats.runner_main"]
    return _start(
        argv, {"OFFLOAD_STATS_STATUS_PORT": str(port), **env}, workdir / f"{name}.log", port, "/readyz"
    )


def start_stats_api(env: Mapping[str, str], workdir: Path, name: str = "stats-api") -> Service:
    return _start_gunicorn(
        "offload_stats", "OFFLOAD_STATS_BIND", "OFFLOAD_STATS_API_STATUS_PORT", env, workdir, name
    )


def start_autoscaler(env: Mapping[str, str], workdir: Path, name: str = "autoscaler") -> Service:
    port = free_port()
    argv = [sys.executable, "-m", "offload_autoscaler.main"]
    env = {"OFFLOAD_AUTOSCALER_STATUS_PORT": str(port), **env}
    return _start(argv, env, workdir / f"{name}.log", port, "/healthz")
