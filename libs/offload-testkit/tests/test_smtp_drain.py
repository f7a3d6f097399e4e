"""offload_testkit.smtp.unread_bytes reads the kernel's receive queue of a server's sockets:
what a client sent and the server has not read yet, which SmtpSink.drain waits out."""

from __future__ import annotations

import socket

from offload_testkit.amqp import wait_for
from offload_testkit.smtp import unread_bytes


def test_unread_bytes_count_what_the_server_has_not_read_from_that_client():
    with socket.create_server(("127.0.0.1", 0)) as server:
        server_port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", server_port)) as client:
            accepted, _ = server.accept()
            with accepted:
                client_port = client.getsockname()[1]
                client.sendall(b"x" * 100)
                wait_for(lambda: unread_bytes(server_port, {client_port}) == 100, what="100 bytes queued")
                assert unread_bytes(server_port, {client_port + 1}) == 0  # another client's: none
                assert accepted.recv(100) == b"x" * 100
                assert unread_bytes(server_port, {client_port}) == 0
