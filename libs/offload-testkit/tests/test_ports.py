"""free_port under pytest-xdist: each worker draws from a range of its own, below the
kernel's ephemeral ports, so a port one worker picked while its server is still starting
is never another worker's pick. The control is one process: the whole range."""

from __future__ import annotations

from pathlib import Path

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
