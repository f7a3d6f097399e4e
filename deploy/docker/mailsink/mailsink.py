"""A mail sink: accepts every message over SMTP and lists them over HTTP, in memory.

SMTP on 1025 (aiosmtpd). HTTP on 8025 answers the subset of Mailpit's API that the e2e suite
and a person trying the chart need, with Mailpit's field names so either sink can sit behind
the chart's `mailpit` Service:

    GET /api/v1/messages?start=0&limit=50 newest first, one page, with the total
    GET /api/v1/search?query=to:ADDRESS   the same, only messages with ADDRESS among the recipients
    GET /livez                            200 while the process runs

Never for production: nothing is persisted, and everything is accepted.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import signal
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller

SMTP_PORT = 1025
HTTP_PORT = 8025
DEFAULT_LIMIT = 50

log = logging.getLogger("mailsink")


class Inbox:
    """Every message received, oldest first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[dict] = []

    def add(self, sender: str, recipients: list[str], data: bytes) -> dict:
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        message = {
            "ID": str(uuid.uuid4()),
            "MessageID": str(parsed.get("Message-ID", "")).strip("<>"),
            "From": {"Name": "", "Address": sender},
            "To": [{"Name": "", "Address": r} for r in recipients],
            "Subject": str(parsed.get("Subject", "")),
            "Created": datetime.now(UTC).isoformat(),
            "Size": len(data),
        }
        with self._lock:
            self._messages.append(message)
        return message

    def listing(self, recipient: str | None, start: int, limit: int) -> dict:
        with self._lock:
            chosen = [
                m
                for m in self._messages
                if recipient is None or any(to["Address"].lower() == recipient for to in m["To"])
            ]
        page = list(reversed(chosen))[start : start + limit]
        return {"total": len(chosen), "messages_count": len(chosen), "start": start, "count": len(page),
                "messages": page}  # fmt: skip


class SmtpHandler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001 - aiosmtpd's hook
        message = self.inbox.add(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        log.info(
            "received %s for %s: %s", message["MessageID"], ",".join(envelope.rcpt_tos), message["Subject"]
        )
        return "250 Message accepted for delivery"


def http_handler(inbox: Inbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            params = parse_qs(url.query)
            try:
                start = int(params.get("start", ["0"])[0])
                limit = int(params.get("limit", [DEFAULT_LIMIT])[0])
            except ValueError:
                return self._send(400, {"error": "start and limit must be integers"})
            if start < 0 or limit < 0:
                return self._send(400, {"error": "start and limit must not be negative"})
            if url.path == "/livez":
                return self._send(200, {"status": "ok"})
            if url.path == "/api/v1/messages":
                return self._send(200, inbox.listing(None, start, limit))
            if url.path == "/api/v1/search":
                query = params.get("query", [""])[0].strip()
                if not query.startswith("to:") or len(query) == 3:
                    return self._send(400, {"error": "only query=to:ADDRESS is supported"})
                return self._send(200, inbox.listing(query[3:].strip('"').lower(), start, limit))
            return self._send(404, {"error": f"no such path: {url.path}"})

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            log.debug(format, *args)

    return Handler


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command
    inbox = Inbox()
    smtp = Controller(SmtpHandler(inbox), hostname="0.0.0.0", port=SMTP_PORT)
    smtp.start()
    http = ThreadingHTTPServer(("0.0.0.0", HTTP_PORT), http_handler(inbox))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    threading.Thread(target=http.serve_forever, daemon=True).start()
    log.info("mail sink: SMTP on :%d, HTTP on :%d", SMTP_PORT, HTTP_PORT)
    stop.wait()
    http.shutdown()
    smtp.stop()


if __name__ == "__main__":
    main()
