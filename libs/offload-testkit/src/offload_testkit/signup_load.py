"""Signups as patient clients send them, one at a time or as a steady load.

A patient client retries a 503 after its Retry-After, with the same Idempotency-Key when the
answer says the signup may have reached the broker (so a retry is the same signup), with a
new key otherwise, until its patience runs out. Every answer is kept: what was accepted,
what was refused and when, and anything that is neither a 202 nor a 503 with Retry-After.
The chaos scenarios and the e2e suite both send their signups through `send_patiently`.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import requests


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    asked: float  # monotonic seconds
    answered: float
    uncertain: bool = False  # a 503 saying the signup may have reached the broker


@dataclasses.dataclass
class PatientSignup:
    """How one patient client's signup ended: accepted (its id), given up, or unexpected."""

    answers: list[Answer] = dataclasses.field(default_factory=list)
    signup_id: str | None = None
    gave_up: bool = False
    unexpected: str | None = None

    @property
    def refusals(self) -> list[Answer]:
        return [a for a in self.answers if a.status == 503]


def send_patiently(
    web: str,
    body: dict[str, str],
    key: str,
    *,
    patience: float,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    retry_unanswered: bool = False,
    on_answer: Callable[[Answer], None] = lambda _answer: None,
) -> PatientSignup:
    """POST `body` to the web's signup API until it is accepted or `patience` seconds are
    over. No answer at all ends the attempt as unexpected, unless `retry_unanswered`.
    `on_answer` hears each answer as it comes (a fault's effect is watched live)."""
    result = PatientSignup()

    def answer(got: Answer) -> None:
        result.answers.append(got)
        on_answer(got)

    tries, may_have_landed = itertools.count(1), False
    give_up_at = time.monotonic() + patience
    while True:
        asked = time.monotonic()
        try:
            response = requests.post(
                f"{web}/api/v1/signups",
                json=body,
                headers={"Idempotency-Key": key, **(headers or {})},
                timeout=timeout,
            )
        except requests.RequestException as exc:
            if not retry_unanswered or time.monotonic() > give_up_at:
                result.unexpected = f"no answer ({type(exc).__name__})"
                return result
            time.sleep(1)
            continue
        answered = time.monotonic()
        if response.status_code == 202:
            answer(Answer(202, asked, answered))
            result.signup_id = response.json()["id"]
            return result
        if response.status_code != 503 or "Retry-After" not in response.headers:
            answer(Answer(response.status_code, asked, answered))
            result.unexpected = f"{response.status_code} {response.text[:120]}"
            return result
        uncertain = bool(response.json().get("uncertain_ids"))
        answer(Answer(503, asked, answered, uncertain))
        may_have_landed = may_have_landed or uncertain
        if not may_have_landed:
            # Nothing was ever sent under this key, the answers say: a new key is a new
            # signup, and if a refused one went out after all, the mail server sees two.
            key = f"{key.split('~')[0]}~{next(tries)}"
        if answered > give_up_at:
            result.gave_up = True
            return result
        time.sleep(float(response.headers["Retry-After"]))  # the client's backoff, as told


@dataclasses.dataclass
class LoadRecord:
    accepted: dict[str, str] = dataclasses.field(default_factory=dict)  # address -> signup id
    refused: int = 0
    refused_at: list[float] = dataclasses.field(default_factory=list)  # monotonic, each 503
    accepted_at: list[float] = dataclasses.field(default_factory=list)  # monotonic, each 202
    unexpected: list[str] = dataclasses.field(default_factory=list)
    gave_up: list[str] = dataclasses.field(default_factory=list)

    def failover_seconds(self) -> float:
        """First 503 to the first 202 after it (0 when nothing was refused)."""
        if not self.refused_at:
            return 0.0
        first = min(self.refused_at)
        after = [t for t in self.accepted_at if t > first]
        return (min(after) - first) if after else float("inf")


class SignupLoad:
    """`rate` signups a second from a pool of clients until stop(); a context manager."""

    def __init__(self, web: str, rate: float, *, patience: float = 120.0, fruit: str = "pear") -> None:
        self.web = web
        self.rate = rate
        self.patience = patience
        self.fruit = fruit
        self.run_id = uuid.uuid4().hex[:8]
        self.record = LoadRecord()
        self.sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(32)
        self._pacer = threading.Thread(target=self._pace, daemon=True)

    def __enter__(self) -> SignupLoad:
        self._pacer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LoadRecord:
        """Stop sending new signups and wait for every client to have its final answer."""
        self._stop.set()
        self._pacer.join()
        self._pool.shutdown(wait=True)
        return self.record

    def address(self, i: int) -> str:
        return f"load-{self.run_id}-{i}@example.com"

    def _pace(self) -> None:
        started = time.monotonic()
        for i in itertools.count():
            if self._stop.is_set():
                return
            time.sleep(max(0.0, started + i / self.rate - time.monotonic()))
            self.sent += 1
            self._pool.submit(self._one, i)

    def _one(self, i: int) -> None:
        address = self.address(i)
        body = {"name": f"Load {i}", "email": address, "fruit": self.fruit}

        # The web itself is up throughout: no answer at all is a finding, and is retried.
        def refused(answer: Answer) -> None:
            if answer.status == 503:
                with self._lock:
                    self.record.refused += 1
                    self.record.refused_at.append(answer.answered)

        result = send_patiently(
            self.web,
            body,
            f"{self.run_id}-{i}",
            patience=self.patience,
            timeout=15,
            retry_unanswered=True,
            on_answer=refused,
        )
        with self._lock:
            if result.signup_id is not None:
                self.record.accepted[address] = result.signup_id
                self.record.accepted_at.append(result.answers[-1].answered)
            elif result.gave_up:
                self.record.gave_up.append(address)
            elif result.unexpected is not None:
                self.record.unexpected.append(f"signup {i}: {result.unexpected}")
