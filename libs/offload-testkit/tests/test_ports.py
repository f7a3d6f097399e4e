"""free_port under pytest-xdist: each worker draws from a range of its own, below the
kernel's ephemeral ports, so a port one worker picked while its server is still starting
is never another worker's pick. The control is one process: the whole range."""

from __future__ import annotations

from pathlib import Path

from offload_testkit import processes
from offload_testkit.processes import PORTS, free_port, port_range


def ephemeral_start() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_workers_draw_from_disjoint_ranges_below_the_ephemeral_ports(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "4")
    ranges = [port_range(f"gw{i}") for i in range(4)]
    ports = [set(range(low, high + 1)) for low, high in ranges]
    assert all(not a & b for i, a in enumerate(ports) for b in ports[i + 1 :])
    assert all(PORTS[0] <= low and high <= PORTS[1] for low, high in ranges)
    assert PORTS[1] < ephemeral_start()


def test_a_worker_gets_a_port_from_its_own_range(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    low, high = port_range()
    assert all(low <= free_port() <= high for _ in range(20))


def test_control_one_process_draws_from_the_whole_range(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    assert port_range() == PORTS


def test_a_port_is_not_handed_out_twice_before_its_server_takes_it(monkeypatch):
    """Every pick is free when made; nothing binds them here, as in a cluster whose nodes'
    ports are all picked before any node starts. In a range of 40 ports, 40 picks are all
    different. The control forgets each pick at once: the same 40 picks then repeat some
    (40 random draws from 40 ports: all distinct has a chance of 40!/40**40, about 1e-16)."""
    monkeypatch.setattr(processes, "port_range", lambda: (PORTS[0], PORTS[0] + 39))
    picks = [free_port() for _ in range(40)]
    assert len(set(picks)) == 40
    monkeypatch.setattr(processes, "_HANDED_OUT", _Forgetful())
    forgetful = [free_port() for _ in range(40)]
    assert len(set(forgetful)) < 40


class _Forgetful(list):
    """A handed-out record that keeps nothing."""

    def append(self, _port: int) -> None:
        pass
