"""The verdict of a chaos run: a pure function of what the clients were told, what reached
the mail server, what stats counted and how the queues ended. `make chaos` and
tests/chaos/test_scenarios.py both judge with `verdict`.

The promises it checks, per recipient (every workload address is its own, except where a
scenario signs one address up from many clients at once):

- every address answered 202 gets exactly one email, however many signups named it (the
  others are counted as suppressed); an address never answered 202 gets none;
- duplicates only inside the documented window: the SMTP server has a mail and the mailer
  has not recorded it in its sent-store, and then the mailer dies. The harness lists the
  mails in that window at each kill (`Window`: the victim is frozen first and its
  connections' last mails checked against the store); a duplicate of any other mail is a
  failure, and in a run where no mailer is killed the window is empty, so any duplicate
  fails;
- no false 202, and every signup accepted unless the broker itself was faulted;
- stats exact on every family, from what the clients sent;
- the run finished: every work, delay and parking queue as expected, nothing unacked;
- every fault landed on work in flight.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping

from offload_core.agents import agent_family


@dataclasses.dataclass
class Ledger:
    """What the clients sent and were told."""

    accepted: dict[str, str] = dataclasses.field(default_factory=dict)  # address -> first signup id
    # Accepted signups for an address already accepted: welcomed once, the rest suppressed.
    repeated: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    fruits: dict[str, str] = dataclasses.field(default_factory=dict)  # address -> fruit
    refused: int = 0  # answers 503 with Retry-After
    uncertain: int = 0  # of those, the ones whose signup the broker may still have had
    gave_up: list[str] = dataclasses.field(default_factory=list)  # addresses never accepted
    unexpected: list[str] = dataclasses.field(default_factory=list)  # any other answer, described
    false_202: int = 0
    # Accepted, counted by stats, but never to be mailed (a poison signup): address -> fruit.
    counted_only: dict[str, str] = dataclasses.field(default_factory=dict)
    # Every answered request the web reports to stats: (path, user agent, status class) -> count.
    requests: collections.Counter[tuple[str, str, str]] = dataclasses.field(
        default_factory=collections.Counter
    )


@dataclasses.dataclass(frozen=True)
class Window:
    """Mails in the documented duplicate window: received by the SMTP server on a killed
    mailer's connection and not yet in the sent-store when it died."""

    addresses: frozenset[str] = frozenset()

    def __or__(self, other: Window) -> Window:
        return Window(self.addresses | other.addresses)


@dataclasses.dataclass(frozen=True)
class Fault:
    """A fault as it landed: what, and the work in flight it found (0 means too late)."""

    what: str
    in_flight: int
    detail: str = ""

    def describe(self) -> str:
        return f"{self.what} ({self.in_flight} in flight{', ' + self.detail if self.detail else ''})"


@dataclasses.dataclass(frozen=True)
class Policy:
    broker_faulted: bool = False  # refusals (503 + Retry-After) are expected, not failures
    parked: Mapping[str, int] = dataclasses.field(default_factory=dict)  # parking queue -> messages


@dataclasses.dataclass(frozen=True)
class Observation:
    copies: Mapping[str, int]  # address -> emails received
    counters: Mapping[tuple[str, str], int]  # (family, key) -> count, from the stats store
    dropped_reports: int  # request reports the web says it dropped (its metrics)
    depths: Mapping[str, tuple[int, int]]  # queue -> (ready, unacked) when the run ended
    finished: bool  # False: the deadline passed first (depths say where work was left)
    window: Window
    faults: tuple[Fault, ...]


@dataclasses.dataclass(frozen=True)
class Result:
    scenario: str
    accepted: int
    refused: int
    uncertain: int
    delivered: int
    duplicates: int
    lost: int
    strays: int
    window: int
    stats_exact: bool
    false_202: int
    faults: tuple[Fault, ...]
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems

    def line(self) -> str:
        faults = "; ".join(f.describe() for f in self.faults) or "none"
        return (
            f"chaos {self.scenario}: accepted={self.accepted} refused={self.refused}"
            f" uncertain={self.uncertain} delivered={self.delivered}"
            f" duplicates={self.duplicates} lost={self.lost} strays={self.strays} window={self.window}"
            f" stats_exact={'yes' if self.stats_exact else 'no'} false_202={self.false_202}"
            f" faults=[{faults}] {'PASS' if self.passed else 'FAIL'}"
            + "".join(f"\n  - {problem}" for problem in self.problems)
        )


def expected_counters(ledger: Ledger) -> dict[tuple[str, str], int]:
    """What stats must hold: one count per accepted signup and its mail, one per answered request."""
    expected: collections.Counter[tuple[str, str]] = collections.Counter()
    fruits = [ledger.fruits[address] for address in ledger.accepted] + list(ledger.counted_only.values())
    fruits += [ledger.fruits[address] for address, n in ledger.repeated.items() for _ in range(n)]
    for fruit in fruits:
        expected["signups", "total"] += 1
        expected["fruit", fruit] += 1
        expected["lane", "high"] += 1
    if ledger.accepted:
        expected["mails", "sent"] = len(ledger.accepted)
    if ledger.repeated:
        expected["mails", "suppressed"] = sum(ledger.repeated.values())
    for (path, agent, status), count in ledger.requests.items():
        expected["requests", "total"] += count
        expected["path", path] += count
        expected["user_agent", agent_family(agent)] += count  # the web reports families
        expected["status_class", status] += count
    return dict(expected)


def _stats_problems(ledger: Ledger, observed: Observation) -> list[str]:
    expected = expected_counters(ledger)
    families = {family for family, _ in expected} | {family for family, _ in observed.counters}
    problems = []
    request_families = {"requests", "path", "user_agent", "status_class"}
    for family in sorted(families):
        want = {k: v for (f, k), v in expected.items() if f == family}
        got = {k: v for (f, k), v in observed.counters.items() if f == family}
        if family in request_families and observed.dropped_reports:
            # The web dropped reports (and said so): counts may fall short by that much, never exceed.
            short = sum(want.values()) - sum(got.values())
            over = {k: v for k, v in got.items() if v > want.get(k, 0)}
            if over or not 0 <= short <= observed.dropped_reports:
                problems.append(
                    f"stats {family}: {got} for {want} with {observed.dropped_reports} reports dropped"
                )
        elif got != want:
            diff = {
                k: (got.get(k, 0), want.get(k, 0))
                for k in sorted(set(got) | set(want))
                if got.get(k, 0) != want.get(k, 0)
            }
            problems.append(f"stats {family} counted/expected: {diff}")
    return problems


def verdict(scenario: str, policy: Policy, ledger: Ledger, observed: Observation) -> Result:
    problems: list[str] = []
    accepted = set(ledger.accepted)
    copies = {address: n for address, n in observed.copies.items() if n > 0}
    lost = sorted(accepted - set(copies))
    strays = sorted(set(copies) - accepted)
    duplicated = {address: n for address, n in copies.items() if n > 1}
    outside = sorted(a for a, n in duplicated.items() if a not in observed.window.addresses or n > 2)
    if not accepted:
        problems.append("no signup was accepted: the run proves nothing")
    if lost:
        problems.append(f"{len(lost)} accepted signups never mailed, e.g. {lost[:3]}")
    if strays:
        problems.append(f"{len(strays)} addresses mailed that were never accepted, e.g. {strays[:3]}")
    if outside:
        problems.append(
            f"{len(outside)} addresses mailed more than once outside the duplicate window"
            f" ({len(observed.window.addresses)} mails were in it at the kills), e.g. {outside[:3]}"
        )
    if ledger.false_202:
        problems.append(f"{ledger.false_202} signups answered 202 while the broker could not confirm them")
    if ledger.unexpected:
        problems.append(f"{len(ledger.unexpected)} unexpected answers, e.g. {ledger.unexpected[:3]}")
    if not policy.broker_faulted and (ledger.refused or ledger.gave_up):
        problems.append(f"{ledger.refused} signups refused although the broker was never faulted")
    elif ledger.gave_up:
        problems.append(f"{len(ledger.gave_up)} signups still refused after the broker recovered")
    for fault in observed.faults:
        if fault.in_flight <= 0:
            problems.append(f"fault came too late: {fault.describe()}")
    if not observed.faults and scenario != "baseline":
        problems.append("no fault was injected")
    stats = _stats_problems(ledger, observed)
    problems += stats
    if not observed.finished:
        busy = {q: d for q, d in observed.depths.items() if d != (policy.parked.get(q, 0), 0)}
        problems.append(f"the run did not finish before its deadline; queues (ready, unacked): {busy}")
    for queue, (ready, unacked) in sorted(observed.depths.items()):
        want = policy.parked.get(queue, 0)
        if observed.finished and (ready, unacked) != (want, 0):
            problems.append(f"{queue} ended with {ready} ready and {unacked} unacked, expected {want} and 0")
    return Result(
        scenario=scenario,
        accepted=len(accepted),
        refused=ledger.refused,
        uncertain=ledger.uncertain,
        delivered=len(accepted & set(copies)),
        duplicates=sum(n - 1 for n in duplicated.values()),
        lost=len(lost),
        strays=len(strays),
        window=len(observed.window.addresses),
        stats_exact=not stats,
        false_202=ledger.false_202,
        faults=observed.faults,
        problems=tuple(problems),
    )
