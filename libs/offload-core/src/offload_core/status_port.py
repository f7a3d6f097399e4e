"""A gunicorn service's status endpoints on a port of their own, as the runners have them.

gunicorn listens on two ports: the public one, which a Service and an Ingress route, and a
status port for the kubelet's probes and Prometheus. /metrics (every metric of the process)
and /readyz (the state of the broker connection) are nobody else's business, so each path is
served on one port only: the status paths on the status port, everything else on the public
port, a 404 otherwise. gunicorn tells the port a request arrived on in SERVER_PORT, from the
listening socket (never from the Host header, which the client writes).
"""

from __future__ import annotations

from flask import Flask, abort, request

STATUS_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


def status_bind(public_bind: str, status_port: int) -> str:
    """gunicorn's bind for the status port: the public bind's host (`0.0.0.0:8000` gives
    `0.0.0.0:<status_port>`)."""
    host = public_bind.rsplit(":", 1)[0] if ":" in public_bind else "127.0.0.1"
    return f"{host}:{status_port}"


def served_here(path: str, arrived_on_port: str, status_port: int) -> bool:
    """Whether a request for `path` that arrived on `arrived_on_port` is answered."""
    return (arrived_on_port == str(status_port)) == (path in STATUS_PATHS)


def install(app: Flask, status_port: int | None) -> None:
    """Split `app`'s paths between the ports; None (a test client, one process without
    gunicorn): every path on the one port."""
    if status_port is None:
        return

    @app.before_request
    def _on_its_port() -> None:
        if not served_here(request.path, request.environ.get("SERVER_PORT", ""), status_port):
            abort(404)
