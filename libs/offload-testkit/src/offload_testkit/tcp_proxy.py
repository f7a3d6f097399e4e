"""A TCP proxy on loopback that a test can cut or turn into a black hole, one direction at a time.

It places a fault exactly: "the message left the client but never reached the broker"
(`swallow_to_server`), "the broker took it but its confirm never came back"
(`swallow_to_client`), then `cut()` drops every connection, as a network failure does.
Hand-written: a fault proxy such as toxiproxy is a Go service with an HTTP API, more than
these tests need.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from offload_testkit.processes import free_port


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, port: int | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port()
        self.swallow_to_server = False
        self.swallow_to_client = False
        # At most this many connections since the last cut(); clients beyond it are closed
        # at once, as a broker at its connection limit would. None: no limit.
        self.max_connections: int | None = None
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                full = self.max_connections is not None and len(self._sockets) // 2 >= self.max_connections
            if full:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, to_server: bool) -> None:
        try:
            while data := source.recv(65536):
                if not (self.swallow_to_server if to_server else self.swallow_to_client):
                    target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def route(self, url: str) -> str:
        """`url` (an AMQP URL to the upstream) made to go through this proxy."""
        return url.replace(f":{self.upstream[1]}/", f":{self.port}/")

    def cut(self) -> None:
        """Drop every open connection (new ones are accepted) and stop swallowing."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for end in sockets:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()
        self.swallow_to_server = self.swallow_to_client = False

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()
