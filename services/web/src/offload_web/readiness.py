"""Readiness of the whole web pod, not of the worker that happens to answer.

Each gunicorn worker has its own publisher. A probe lands on one worker, so readiness
answered per worker flapped between 200 and 503 while the workers connected one by one.
Here each worker keeps a file named by its pid in a directory the master made
(`OFFLOAD_WEB_READINESS_DIR`), present while its publisher is ready; the master removes
a dead worker's file. The pod is ready when as many workers are ready as gunicorn runs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

READINESS_DIR_VARIABLE = "OFFLOAD_WEB_READINESS_DIR"
EXPECTED_FILE = "workers"  # how many workers gunicorn runs, written by the master
CHECK_INTERVAL = 0.25


@dataclass(frozen=True)
class PodReadiness:
    directory: Path
    workers: int

    @classmethod
    def create(cls, directory: Path, workers: int) -> PodReadiness:
        """For the master, before the workers start: an empty directory that expects them."""
        directory.mkdir(parents=True, exist_ok=True)
        for entry in directory.iterdir():
            entry.unlink()
        (directory / EXPECTED_FILE).write_text(str(workers))
        return cls(directory, workers)

    def record(self, pid: int, ready: bool) -> None:
        marker = self.directory / str(pid)
        if ready:
            marker.touch()
        else:
            marker.unlink(missing_ok=True)

    def forget(self, pid: int) -> None:
        """For the master, when a worker exits: its file no longer speaks for anyone."""
        self.record(pid, False)

    def ready_workers(self) -> int:
        try:
            return sum(1 for entry in os.scandir(self.directory) if entry.name.isdigit())
        except FileNotFoundError:
            return 0

    @property
    def ready(self) -> bool:
        return self.ready_workers() >= self.workers


def from_environment() -> PodReadiness | None:
    """The pod's readiness under gunicorn (gunicorn_conf sets the directory); None elsewhere."""
    directory = os.environ.get(READINESS_DIR_VARIABLE)
    if not directory:
        return None
    return PodReadiness(Path(directory), int((Path(directory) / EXPECTED_FILE).read_text()))


def keep_recording(readiness: PodReadiness, worker_ready: Callable[[], bool]) -> threading.Thread:
    """A daemon thread that records this worker's state whenever it changes."""

    def loop() -> None:
        pid, last = os.getpid(), None
        stop = threading.Event()
        while not stop.wait(0 if last is None else CHECK_INTERVAL):
            now = worker_ready()
            if now != last:
                readiness.record(pid, now)
                last = now

    thread = threading.Thread(target=loop, name="offload-web-readiness", daemon=True)
    thread.start()
    return thread
