"""offload-external-scaler: mode ExpectedWaitTime served to KEDA (external_scaler.py)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc

from offload_autoscaler.decision import Observation
from offload_autoscaler.external_scaler import ExternalScaler
from offload_autoscaler.externalscaler import externalscaler_pb2_grpc as pb_grpc
from offload_autoscaler.sources import ManagementApiSource
from offload_autoscaler.spec import Trigger
from offload_core.logs import configure_logging
from offload_core.settings import ConfigError, from_env, setting
from offload_core.status import serve_status

log = logging.getLogger("offload.autoscaler.external")


@dataclass(frozen=True)
class ExternalScalerSettings:
    # The RabbitMQ management API every trigger's queue is read from, with its credentials
    # (http://user:password@host:15672); never taken from a ScaledObject.
    management_url: str = setting("OFFLOAD_EXTERNAL_SCALER_MANAGEMENT_URL", secret=True)
    port: int = setting("OFFLOAD_EXTERNAL_SCALER_PORT", 9090, minimum=0)
    status_port: int = setting("OFFLOAD_EXTERNAL_SCALER_STATUS_PORT", 9105, minimum=0)
    # How often a StreamIsActive stream reads the queue.
    stream_interval: float = setting("OFFLOAD_EXTERNAL_SCALER_STREAM_INTERVAL", 5.0, minimum=0.1)
    # Calls served at once; a stream holds one of the threads for as long as it is open.
    threads: int = setting("OFFLOAD_EXTERNAL_SCALER_THREADS", 16, minimum=2)


class SerialReader:
    """One management-API session shared by the server's threads, one request at a time
    (a requests.Session is not made to be used from several threads at once)."""

    def __init__(self, url: str) -> None:
        self._source = ManagementApiSource(url)
        self._lock = threading.Lock()

    def __call__(self, trigger: Trigger) -> Observation:
        with self._lock:
            return self._source.read(trigger)

    def close(self) -> None:
        self._source.close()


def start_server(settings: ExternalScalerSettings, reader: SerialReader) -> tuple[grpc.Server, int]:
    """The gRPC server, started; returns it and the port it listens on (0: one chosen)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="offload-external"),
        # Beyond this, calls are refused (RESOURCE_EXHAUSTED) instead of queueing without end.
        maximum_concurrent_rpcs=settings.threads * 4,
    )
    scaler = ExternalScaler(reader, settings.management_url, stream_interval=settings.stream_interval)
    pb_grpc.add_ExternalScalerServicer_to_server(scaler, server)
    port = server.add_insecure_port(f"[::]:{settings.port}")
    server.start()
    return server, port


def main() -> None:
    configure_logging("autoscaler")
    try:
        settings = from_env(ExternalScalerSettings)
    except ConfigError as exc:
        log.error("invalid external scaler settings: %s", exc)
        sys.exit(2)
    reader = SerialReader(settings.management_url)
    server, port = start_server(settings, reader)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    status = serve_status(settings.status_port, lambda: not stopping.is_set())
    log.info("external scaler serving", extra={"fields": {"port": port}})
    stopping.wait()
    server.stop(grace=5).wait()
    reader.close()
    status.shutdown()
    log.info("external scaler stopped")


if __name__ == "__main__":
    main()
