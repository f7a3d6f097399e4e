"""offload-deadletters: list, show, replay and purge parked messages of a work queue.

    offload-deadletters list   mailer.signups.high [--limit 20]
    offload-deadletters show   mailer.signups.high MESSAGE_ID
    offload-deadletters replay mailer.signups.high [--id MESSAGE_ID ...] [--limit N]
    offload-deadletters purge  mailer.signups.high [--id MESSAGE_ID ...] [--yes]

Replay publishes each parked message back to its work queue with confirms and
removes it from the parking queue only after the broker confirmed, so a crash in
the middle duplicates at worst, never loses. Reads OFFLOAD_AMQP_URL.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from offload_core.brokers import blocking_connection
from offload_core.config import CoreConfig
from offload_core.headers import DEATH_HEADER, PARK_REASON_HEADER, PARKING_TRAIL_HEADERS


@dataclass
class Parked:
    delivery_tag: int
    properties: pika.BasicProperties
    body: bytes

    @property
    def reason(self) -> str:
        headers = self.properties.headers or {}
        if PARK_REASON_HEADER in headers:
            return str(headers[PARK_REASON_HEADER])
        deaths = headers.get(DEATH_HEADER) or []
        return f"dead-lettered by the broker: {deaths[0].get('reason')}" if deaths else "unknown"

    def summary(self) -> dict[str, Any]:
        return {"message_id": self.properties.message_id, "type": self.properties.type, "reason": self.reason}


def _browse(channel: BlockingChannel, queue: str, limit: int | None) -> Iterator[Parked]:
    """Get messages without acking: they go back when the channel closes."""
    count = 0
    while limit is None or count < limit:
        method, properties, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            return
        count += 1
        yield Parked(method.delivery_tag, properties, body)


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return body.decode("utf-8", "replace")


def run(argv: Sequence[str] | None = None, out: Any = sys.stdout) -> int:
    parser = argparse.ArgumentParser(
        prog="offload-deadletters", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["list", "show", "replay", "purge"])
    parser.add_argument("queue", help="work queue whose parked messages to act on, e.g. mailer.signups.high")
    parser.add_argument("message_id", nargs="?", help="for show")
    parser.add_argument("--id", action="append", default=[], help="only these message ids (replay, purge)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--yes", action="store_true", help="purge without asking")
    args = parser.parse_args(argv)
    if args.command == "show" and not args.message_id:
        parser.error("show needs a MESSAGE_ID")
    if args.command == "purge" and not args.yes and not args.id:
        parser.error("purge of a whole parking queue needs --yes")

    config = CoreConfig.from_env()
    parking = f"{args.queue}.parked"
    connection = blocking_connection(config.amqp_url)
    try:
        channel = connection.channel()
        try:
            channel.queue_declare(parking, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            print(f"no parking queue {parking!r}: is {args.queue!r} a work queue?", file=sys.stderr)
            return 2
        channel = connection.channel()
        channel.confirm_delivery()
        limit = args.limit if args.command in ("list", "replay") else None
        selected = 0
        for parked in _browse(channel, parking, limit):
            wanted = (not args.id or parked.properties.message_id in args.id) and (
                args.command != "show" or parked.properties.message_id == args.message_id
            )
            if not wanted:
                continue
            selected += 1
            if args.command == "list":
                print(json.dumps(parked.summary(), ensure_ascii=False), file=out)
            elif args.command == "show":
                shown = parked.summary() | {
                    "headers": parked.properties.headers,
                    "body": _decode(parked.body),
                }
                print(json.dumps(shown, indent=2, default=str, ensure_ascii=False), file=out)
            elif args.command == "replay":
                headers = {
                    k: v
                    for k, v in (parked.properties.headers or {}).items()
                    if k not in PARKING_TRAIL_HEADERS
                }
                parked.properties.headers = headers
                # Default exchange, routing key = queue: back to exactly that work queue.
                channel.basic_publish("", args.queue, parked.body, parked.properties, mandatory=True)
                channel.basic_ack(parked.delivery_tag)
            elif args.command == "purge":
                channel.basic_ack(parked.delivery_tag)
        verb = {"list": "listed", "show": "shown", "replay": "replayed", "purge": "purged"}[args.command]
        print(f"{selected} message(s) {verb} from {parking}", file=sys.stderr)
        return 0 if selected or args.command == "list" else 1
    finally:
        connection.close()


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
