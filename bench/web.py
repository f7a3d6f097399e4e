"""Web benchmark on loopback (wrk, then siege -b), one run, one private broker.

Each wrk comparison alternates its two sides over several rounds and reports the median of
the per-round ratios: this machine is shared, and a single pair of runs swings by ±30%.

1. POST /api/v1/signups publishing (confirm before 202) vs OFFLOAD_WEB_PUBLISH=off. Goal >= 0.85.
2. The same confirmed signup vs the floor (bench/floor_app.py: a bare Flask app with the same
   validation under the same gunicorn settings), and our endpoint without publishing vs the
   floor: what the request path costs above the framework. Goal >= 0.75.
3. Latency of a confirmed signup at half the capacity measured in 1 (wrk paced by a delay
   per connection): p50 and p99 from wrk's latency distribution. Goal p99 <= 5 ms. The
   same pace without publishing and on the floor says how much of it is the confirm.
4. GET / with the analytics middleware vs OFFLOAD_WEB_ANALYTICS=off. Goal >= 0.97.
5. The siege table of Iron.io's IronMQ delayed-processing article: response time,
   transaction rate, longest transaction, with and without queueing (POST signups), printed as `siege` lines.

By default the web servers run on CPU 0 and the broker and the load generators on the
other CPUs: the web tier gets cores of its own, as its pods do when the chart deploys it
with the broker elsewhere. `--shared-cores` lets everything share every core instead; the
broker's CPU per signup then comes out of the web's throughput. `--worker-class` runs every
server (ours and the floor) with that gunicorn worker (default: the web's default), and
`--fewer-syscalls` every server with OFFLOAD_FEWER_SYSCALLS=on (offload_core.fewer_syscalls;
the floor then makes its ids as the web does with it on).

Each side also gets its CPU per request, split by process tree (web server, broker, wrk),
and `ratio ..._cpu_limit`: off-side CPU over on-side CPU per request on the saturated
cores (the web's alone when pinned), the best throughput ratio those cores allow.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from common import broker_pid, floor_server, private_broker, service_pid, taskset, web_server, wrk, wrk_run
from cpu import Measured, measure, pin

from offload_testkit.stack import Service

BODY = json.dumps({"name": "Bench", "email": "bench@example.com", "fruit": "kiwi"})
WRK_POST = f"""
wrk.method = "POST"
wrk.body = '{BODY}'
wrk.headers["Content-Type"] = "application/json"
"""
# Each connection waits DELAY_MS before its next request: a paced load instead of a saturating one.
WRK_PACED = (
    WRK_POST
    + """
function delay()
  return DELAY_MS
end
"""
)


def siege(url: str, seconds: int, concurrency: int, workdir: Path, cpus: set[int] | None) -> dict[str, float]:
    urls = workdir / "siege-urls.txt"
    urls.write_text(f"{url}/api/v1/signups POST {BODY}\n")
    rc = workdir / "siegerc"
    rc.write_text("content-type = application/json\nprotocol = HTTP/1.1\nlogging = false\n")
    result = subprocess.run(
        [*taskset(cpus), "siege", "-b", "-q", "-j", f"-R{rc}", f"-c{concurrency}", f"-t{seconds}S",
         f"-f{urls}"],
        capture_output=True, text=True, timeout=seconds + 60,
    )  # fmt: skip
    report = json.loads(result.stdout[result.stdout.index("{") :])
    return report


def interleaved(
    on: Callable[[], Measured], off: Callable[[], Measured], rounds: int
) -> tuple[list[Measured], list[Measured], float]:
    """Alternate the two sides (on-off, off-on, ...) so that both see the same noise of this
    shared machine; returns each side's rounds and the median of the per-round ratios."""
    on_runs: list[Measured] = []
    off_runs: list[Measured] = []
    for round_ in range(rounds):
        if round_ % 2:
            off_runs.append(off())
            on_runs.append(on())
        else:
            on_runs.append(on())
            off_runs.append(off())
    ratios = [a.rate / b.rate for a, b in zip(on_runs, off_runs, strict=True)]
    print(
        "rounds: "
        + " ".join(
            f"{a.rate:.0f}/{b.rate:.0f}={r:.2f}" for a, b, r in zip(on_runs, off_runs, ratios, strict=True)
        )
    )
    return on_runs, off_runs, statistics.median(ratios)


def print_comparison(
    name: str,
    labels: tuple[str, str, str],
    on: list[Measured],
    off: list[Measured],
    ratio: float,
    saturated: tuple[str, ...],
) -> None:
    on_label, off_label, ratio_label = labels
    print(f"bench {name}_{on_label}: {statistics.mean(m.rate for m in on):.0f} req/s")
    print(f"bench {name}_{off_label}: {statistics.mean(m.rate for m in off):.0f} req/s")
    print(f"ratio {name}_{ratio_label}: {ratio:.2f}")
    for label, runs in ((on_label, on), (off_label, off)):
        parts = " ".join(
            f"{tree}={statistics.median(m.cpu_ms[tree] for m in runs):.3f}" for tree in runs[0].cpu_ms
        )
        print(f"bench {name}_cpu_{label}: {parts} ms per request")
    # With both sides saturating the same cores, throughput is cores / CPU per request on
    # them: this is the best ratio the CPU allows, whatever the latency.
    limit = statistics.median(b.ms_on(saturated) / a.ms_on(saturated) for a, b in zip(on, off, strict=True))
    print(f"ratio {name}_cpu_limit: {limit:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=4, help="on/off pairs per comparison")
    parser.add_argument("--siege-seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--shared-cores",
        action="store_true",
        help="let the web servers, the broker and the load generators share every core "
        "(default: the web servers on CPU 0, the rest on the other CPUs)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("signup", "floor", "latency", "page", "siege"),
        default=("signup", "floor", "latency", "page", "siege"),
        help="run only these comparisons (default: all)",
    )
    parser.add_argument(
        "--worker-class", choices=("gthread", "gevent"), help="gunicorn worker of every server"
    )
    parser.add_argument(
        "--fewer-syscalls", action="store_true", help="every server with OFFLOAD_FEWER_SYSCALLS=on"
    )
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    pinned = not args.shared_cores and len(cpus) >= 2
    web_cpus, load_cpus = ({cpus[0]}, set(cpus[1:])) if pinned else (None, None)
    saturated = ("web",) if pinned else ("web", "broker", "wrk")
    print(
        f"layout: web servers on CPU {cpus[0]}, broker and load generators on CPU "
        f"{','.join(map(str, cpus[1:]))}"
        if pinned
        else f"layout: web servers, broker and load generators share CPUs {','.join(map(str, cpus))}"
    )
    with contextlib.ExitStack() as stack:
        broker, workdir = stack.enter_context(private_broker())
        post = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "post.lua"
        post.write_text(WRK_POST)
        url = broker.amqp_url(broker.create_vhost("bench"))
        worker = {"OFFLOAD_WEB_WORKER_CLASS": args.worker_class} if args.worker_class else {}
        if args.fewer_syscalls:
            worker["OFFLOAD_FEWER_SYSCALLS"] = "on"
        # Three servers up at once, each changing one switch: publishing for the signup
        # (analytics on in both), the analytics middleware for the page (publishing on in both);
        # and the floor.
        all_on = stack.enter_context(web_server(url, workdir, "all-on", **worker))
        publish_off = stack.enter_context(
            web_server(url, workdir, "publish-off", OFFLOAD_WEB_PUBLISH="off", **worker)
        )
        analytics_off = stack.enter_context(
            web_server(url, workdir, "analytics-off", OFFLOAD_WEB_ANALYTICS="off", **worker)
        )
        floor = stack.enter_context(floor_server(workdir, "floor", **worker))
        print(f"worker: {args.worker_class or 'the web default'}, fewer syscalls: {args.fewer_syscalls}")

        if pinned:
            pin(broker_pid(broker), load_cpus)
            for server in (all_on, publish_off, analytics_off, floor):
                pin(service_pid(server), web_cpus)

        def load(url: str, *, seconds: int, script: Path | None = None) -> float:
            return wrk(url, seconds=seconds, connections=args.connections, script=script, cpus=load_cpus)

        def side(server: Service, path: str, script: Path | None = None) -> Callable[[], Measured]:
            """One wrk run against `server`, with the CPU of its process tree and the broker's."""
            url = server.url + path
            return lambda: measure(
                lambda: load(url, seconds=args.seconds, script=script),
                {"web": service_pid(server), "broker": broker_pid(broker)},
            )

        def signups(server: Service) -> Callable[[], Measured]:
            return side(server, "/api/v1/signups", post)

        def page(server: Service) -> Callable[[], Measured]:
            return side(server, "/")

        for server in (all_on, publish_off, analytics_off):  # warm-up
            load(server.url + "/api/v1/signups", seconds=1, script=post)
            load(server.url + "/", seconds=1)
        load(floor.url + "/api/v1/signups", seconds=1, script=post)
        capacity = None
        if "signup" in args.only or "latency" in args.only:
            publishing, not_publishing, ratio = interleaved(
                signups(all_on), signups(publish_off), args.rounds
            )
            capacity = statistics.mean(m.rate for m in publishing)
            if "signup" in args.only:
                print_comparison(
                    "web_signup",
                    ("publishing", "not_publishing", "publishing_vs_not"),
                    publishing,
                    not_publishing,
                    ratio,
                    saturated,
                )
        if "floor" in args.only:
            print_comparison(
                "web_signup_floor",
                ("publishing", "floor", "publishing_vs_floor"),
                *interleaved(signups(all_on), signups(floor), args.rounds),
                saturated,
            )
            print_comparison(
                "web_signup_floor",
                ("not_publishing", "floor", "not_publishing_vs_floor"),
                *interleaved(signups(publish_off), signups(floor), args.rounds),
                saturated,
            )
        if "latency" in args.only and capacity is not None:
            # Half the capacity: each of the connections sends one request per
            # connections / (capacity / 2) seconds, less the answer's own time.
            delay_ms = max(1, round(args.connections / (capacity / 2) * 1000))
            paced = post.with_name("paced.lua")
            paced.write_text(WRK_PACED.replace("DELAY_MS", str(delay_ms)))
            # The same pace without the confirm, and on the floor: what of the latency is
            # the broker's round trip, and what the request path.
            for name, server in (("publishing", all_on), ("not_publishing", publish_off), ("floor", floor)):
                run = wrk_run(
                    server.url + "/api/v1/signups",
                    seconds=max(args.seconds, 10),
                    connections=args.connections,
                    script=paced,
                    cpus=load_cpus,
                )
                print(
                    f"bench web_signup_{name}_at_half_capacity: {run.rate:.0f} req/s "
                    f"(capacity {capacity:.0f}) p50 {run.p50_ms:.2f} ms p99 {run.p99_ms:.2f} ms"
                )
        if "page" in args.only:
            print_comparison(
                "web_page",
                ("analytics_on", "analytics_off", "analytics_on_vs_off"),
                *interleaved(page(all_on), page(analytics_off), args.rounds),
                saturated,
            )
        if "siege" in args.only:
            siege_on = siege(all_on.url, args.siege_seconds, args.connections, workdir, load_cpus)
            siege_off = siege(publish_off.url, args.siege_seconds, args.connections, workdir, load_cpus)
            for name, report in (("with_queueing", siege_on), ("without_queueing", siege_off)):
                print(
                    f"siege {name}: response_time={report['response_time']:.3f}s "
                    f"transaction_rate={report['transaction_rate']:.1f}/s "
                    f"longest={report['longest_transaction']:.2f}s "
                    f"transactions={report['transactions']} failed={report['failed_transactions']}"
                )
            rate_ratio = siege_on["transaction_rate"] / siege_off["transaction_rate"]
            print(f"ratio siege_queueing_vs_not: {rate_ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
