"""Web benchmark on loopback (wrk, then siege -b), one run, one private broker.

1. POST /api/v1/signups publishing (confirm before 202) vs OFFLOAD_WEB_PUBLISH=off. Goal >= 0.8.
2. GET / with the analytics middleware vs OFFLOAD_WEB_ANALYTICS=off. Goal >= 0.95.
3. The IronMQ seed's siege table: response time, transaction rate, longest transaction,
   with and without queueing (POST signups), printed as `siege` lines.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import private_broker, web_server, wrk

BODY = json.dumps({"name": "Bench", "email": "bench@example.com", "fruit": "kiwi"})
WRK_POST = f"""
wrk.method = "POST"
wrk.body = '{BODY}'
wrk.headers["Content-Type"] = "application/json"
"""


def siege(url: str, seconds: int, concurrency: int, workdir: Path) -> dict[str, float]:
    urls = workdir / "siege-urls.txt"
    urls.write_text(f"{url}/api/v1/signups POST {BODY}\n")
    rc = workdir / "siegerc"
    rc.write_text("content-type = application/json\nprotocol = HTTP/1.1\nlogging = false\n")
    result = subprocess.run(
        ["siege", "-b", "-q", "-j", f"-R{rc}", f"-c{concurrency}", f"-t{seconds}S", f"-f{urls}"],
        capture_output=True, text=True, timeout=seconds + 60,
    )  # fmt: skip
    report = json.loads(result.stdout[result.stdout.index("{") :])
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    with private_broker() as (broker, workdir), tempfile.TemporaryDirectory() as scratch:
        post = Path(scratch) / "post.lua"
        post.write_text(WRK_POST)
        url = broker.amqp_url(broker.create_vhost("bench"))
        with web_server(url, workdir, "publish-on") as base:
            wrk(base + "/api/v1/signups", seconds=2, connections=args.connections, script=post)  # warm-up
            publish_on = wrk(
                base + "/api/v1/signups", seconds=args.seconds, connections=args.connections, script=post
            )
            siege_on = siege(base, args.seconds, args.connections, workdir)
            wrk(base + "/", seconds=2, connections=args.connections)
            page_on = wrk(base + "/", seconds=args.seconds, connections=args.connections)
        with web_server(
            url, workdir, "publish-off", OFFLOAD_WEB_PUBLISH="off", OFFLOAD_WEB_ANALYTICS="off"
        ) as base:
            wrk(base + "/api/v1/signups", seconds=2, connections=args.connections, script=post)
            publish_off = wrk(
                base + "/api/v1/signups", seconds=args.seconds, connections=args.connections, script=post
            )
            siege_off = siege(base, args.seconds, args.connections, workdir)
            page_off = wrk(base + "/", seconds=args.seconds, connections=args.connections)
    print(f"bench web_signup_publishing: {publish_on:.0f} req/s")
    print(f"bench web_signup_not_publishing: {publish_off:.0f} req/s")
    print(f"ratio web_signup_publishing_vs_not: {publish_on / publish_off:.2f}")
    print(f"bench web_page_analytics_on: {page_on:.0f} req/s")
    print(f"bench web_page_analytics_off: {page_off:.0f} req/s")
    print(f"ratio web_page_analytics_on_vs_off: {page_on / page_off:.2f}")
    for name, report in (("with_queueing", siege_on), ("without_queueing", siege_off)):
        print(
            f"siege {name}: response_time={report['response_time']:.3f}s "
            f"transaction_rate={report['transaction_rate']:.1f}/s "
            f"longest={report['longest_transaction']:.2f}s "
            f"transactions={report['transactions']} failed={report['failed_transactions']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
