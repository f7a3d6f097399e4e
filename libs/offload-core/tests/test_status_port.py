"""Which port answers which path (offload_core.status_port); the split under gunicorn is
checked by the web's and the stats API's tests on their real ports."""

from __future__ import annotations

import pytest

from offload_core.status_port import served_here, status_bind


@pytest.mark.parametrize(
    ("path", "port", "served"),
    [
        ("/metrics", "9100", True),
        ("/readyz", "9100", True),
        ("/healthz", "9100", True),
        ("/", "9100", False),
        ("/api/v1/signups", "9100", False),
        ("/metrics", "8000", False),
        ("/readyz", "8000", False),
        ("/", "8000", True),
        ("/metrics/", "8000", True),  # not a status path: the app's own 404
    ],
)
def test_each_path_is_served_on_one_port(path: str, port: str, served: bool) -> None:
    assert served_here(path, port, 9100) is served


def test_the_status_port_listens_where_the_public_port_does() -> None:
    assert status_bind("0.0.0.0:8000", 9100) == "0.0.0.0:9100"
    assert status_bind("[::]:8000", 9100) == "[::]:9100"
    assert status_bind("127.0.0.1:8000", 9100) == "127.0.0.1:9100"
