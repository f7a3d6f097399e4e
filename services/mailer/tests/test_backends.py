"""The outbox folder backend keeps every copy: a duplicate send is a second file, never a replacement."""

from __future__ import annotations

import os
import tempfile
import threading
from email.message import EmailMessage
from pathlib import Path

import pytest

from offload_mailer.backends import FileBackend


class ReplacingBackend(FileBackend):
    """Negative control: an outbox that writes one file per Message-ID and replaces it on a resend."""

    def send(self, message: EmailMessage) -> None:
        target = self.outbox / (str(message["Message-ID"]).strip("<>") + ".eml")
        with tempfile.NamedTemporaryFile("wb", dir=self.outbox, delete=False) as handle:
            handle.write(message.as_bytes())
        os.replace(handle.name, target)


def email(body: str) -> EmailMessage:
    message = EmailMessage()
    message["Message-ID"] = "<signup-1@offload.localhost>"
    message["To"] = "ada@example.com"
    message.set_content(body)
    return message


def copies(outbox: Path) -> list[str]:
    return sorted(
        p.read_text().strip().splitlines()[-1] for p in outbox.glob("signup-1@offload.localhost*.eml")
    )


@pytest.mark.parametrize(
    "backend", [FileBackend, ReplacingBackend], ids=["outbox", "replacing (negative control)"]
)
def test_every_send_of_one_message_id_is_kept(backend, tmp_path):
    outbox = backend(str(tmp_path))
    sends = [f"copy {i}" for i in range(8)]
    threads = [threading.Thread(target=outbox.send, args=(email(body),)) for body in sends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if backend is FileBackend:
        assert copies(tmp_path) == sends
        assert not list(tmp_path.glob("*.tmp"))
        assert (tmp_path / "signup-1@offload.localhost.eml").exists()
        assert (tmp_path / "signup-1@offload.localhost.8.eml").exists()
    else:
        assert len(copies(tmp_path)) == 1  # what the check above catches: seven copies gone
