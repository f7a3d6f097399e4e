"""CPU time of process trees, to say where a benchmark's CPU went.

On a two-core machine the load generator, the services and the broker share the cores, so
a throughput ratio mixes the cost of the code under test with the broker's. Counting CPU
seconds per request for each process tree separates them.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields after "pid (comm)"


def tree(root: int) -> list[int]:
    """`root` and its living descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def cpu_seconds(root: int) -> float:
    """User + system CPU seconds used so far by `root`'s living process tree."""
    total = 0
    for pid in tree(root):
        if (fields := _stat(pid)) is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


def children_cpu_seconds() -> float:
    """CPU seconds of this process's finished, waited-for children (the load generator)."""
    times = os.times()
    return times.children_user + times.children_system


@dataclass
class Measured:
    rate: float  # requests per second
    cpu_ms: dict[str, float]  # CPU milliseconds per request, per process tree

    def ms_on(self, trees: tuple[str, ...]) -> float:
        """CPU milliseconds per request of these process trees together."""
        return sum(self.cpu_ms[tree] for tree in trees)


def measure(run: Callable[[], float], roots: Mapping[str, int], generator: str = "wrk") -> Measured:
    """Run `run` (returns requests/s) and count the CPU each process tree used per request."""
    before = {name: cpu_seconds(pid) for name, pid in roots.items()}
    before_generator = children_cpu_seconds()
    started = time.monotonic()
    rate = run()
    elapsed = time.monotonic() - started
    requests = max(rate * elapsed, 1.0)
    used = {name: cpu_seconds(pid) - before[name] for name, pid in roots.items()}
    used[generator] = children_cpu_seconds() - before_generator
    return Measured(rate, {name: seconds * 1000 / requests for name, seconds in used.items()})


def pin(root: int, cpus: set[int]) -> None:
    """Keep every thread of `root`'s process tree on `cpus` (children forked later inherit it)."""
    for pid in tree(root):
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task), cpus)
