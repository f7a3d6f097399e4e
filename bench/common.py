"""Shared pieces of the benchmarks: a private broker and service processes on loopback."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from offload_core.settings import from_env
from offload_testkit.processes import ServiceProcess, free_port
from offload_testkit.rabbitmq import PrivateBroker
from offload_testkit.stack import Service, start_web
from offload_web.config import WebServerConfig

BENCH = Path(__file__).resolve().parent


def broker_pid(broker: PrivateBroker) -> int:
    """The root of the broker's process tree (the start script, then the Erlang VM under it)."""
    return broker.executor.process.pid


def service_pid(service: Service) -> int:
    """The root of a service's process tree (gunicorn's arbiter and its workers)."""
    assert service.process.process is not None
    return service.process.process.pid


@contextlib.contextmanager
def private_broker() -> Iterator[tuple[PrivateBroker, Path]]:
    with tempfile.TemporaryDirectory(prefix="offload-bench-") as workdir:
        broker = PrivateBroker(Path(workdir) / "rabbitmq")
        broker.start()
        try:
            yield broker, Path(workdir)
        finally:
            broker.stop()


@contextlib.contextmanager
def floor_server(workdir: Path, name: str, **env: str) -> Iterator[Service]:
    """bench/floor_app.py under the gunicorn settings the web reads from the same `env`
    (worker class, workers, threads, connections, keep-alive), without the web's hooks."""
    server = from_env(WebServerConfig, {"OFFLOAD_WEB_WORKERS": "2", **env})
    port = free_port()
    # The web's own gthread worker when the web would run it (its header deadline on).
    worker_class = server.worker_class
    if worker_class == "gthread" and server.header_timeout > 0:
        worker_class = "offload_core.header_deadline.HeaderDeadlineWorker"
    argv = [
        sys.executable, "-m", "gunicorn", "--chdir", str(BENCH),
        f"--bind=127.0.0.1:{port}", f"--worker-class={worker_class}",
        f"--workers={server.workers}", f"--threads={server.threads}",
        f"--worker-connections={server.worker_connections}", f"--keep-alive={server.keepalive}",
        f"--timeout={server.timeout}", "floor_app:app",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    switches = {k: v for k, v in env.items() if k == "OFFLOAD_FEWER_SYSCALLS"}  # ids as the web's
    process = ServiceProcess(argv, env=switches, log_path=workdir / f"{name}.log", health_url=url + "/readyz")
    service = Service(process.start(), url)
    try:
        yield service
    finally:
        service.terminate()


@contextlib.contextmanager
def web_server(amqp_url: str, workdir: Path, name: str, **env: str) -> Iterator[Service]:
    service = start_web(
        {"OFFLOAD_AMQP_URL": amqp_url, "OFFLOAD_LOG_LEVEL": "WARNING", **env}, workdir, name=name
    )
    try:
        yield service
    finally:
        service.terminate()


def taskset(cpus: set[int] | None) -> list[str]:
    """The command prefix that runs a program on `cpus` (nothing when None: any CPU)."""
    return ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []


@dataclass(frozen=True)
class WrkRun:
    rate: float  # requests per second
    p50_ms: float
    p99_ms: float


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk_run(
    url: str,
    *,
    seconds: int,
    connections: int,
    script: Path | None = None,
    cpus: set[int] | None = None,
) -> WrkRun:
    """One wrk run (2 threads, bounded by time), on `cpus` if given: its rate and latency
    percentiles. Any non-2xx/3xx answer fails the benchmark."""
    command = [*taskset(cpus), "wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise RuntimeError(f"wrk saw {non_2xx.group(1)} error responses:\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", output, re.MULTILINE))
    assert rate and set(latency) == {"50", "99"}, output
    return WrkRun(float(rate.group(1)), _ms(latency["50"]), _ms(latency["99"]))


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]  # wrk's format
    return float(number) * _UNIT_MS[unit]


def wrk(
    url: str, *, seconds: int, connections: int, script: Path | None = None, cpus: set[int] | None = None
) -> float:
    """Requests per second as wrk reports them (2 threads, bounded by time), on `cpus` if given."""
    return wrk_run(url, seconds=seconds, connections=connections, script=script, cpus=cpus).rate


def histogram_quantile(metrics_text: str, name: str, labels: str, q: float) -> float:
    """Prometheus-style quantile from the cumulative buckets of one labelled histogram."""
    buckets = []
    for line in metrics_text.splitlines():
        if line.startswith(name + "_bucket{") and labels in line:
            le = re.search(r'le="([^"]+)"', line).group(1)  # type: ignore[union-attr]  # histogram lines always carry le
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    buckets.sort()
    total = buckets[-1][1]
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return previous_bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / max(
                count - previous_count, 1
            )
        previous_bound, previous_count = bound, count
    return previous_bound


def metric_value(metrics_text: str, name: str, labels: str = "") -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name) and labels in line and not line.startswith("#"):
            total += float(line.split()[-1])
    return total
