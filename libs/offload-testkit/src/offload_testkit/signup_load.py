"""A steady signup load against a running web, as patient clients send it.

Every signup goes to an address of its own. A 503 is retried after its Retry-After, with the
same Idempotency-Key when the answer says the signup may have reached the broker (so a retry
is the same signup), with a new key otherwise. Every answer is recorded: what was accepted,
what was refused and when, and anything that is neither a 202 nor a 503 with Retry-After.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests


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
        key, tries, may_have_landed = f"{self.run_id}-{i}", itertools.count(1), False
        give_up_at = time.monotonic() + self.patience
        while True:
            try:
                answer = requests.post(
                    f"{self.web}/api/v1/signups", json=body, headers={"Idempotency-Key": key}, timeout=15
                )
            except requests.RequestException as exc:
                # The web itself is up throughout: no answer at all is a finding, not a refusal.
                with self._lock:
                    self.record.unexpected.append(f"signup {i}: no answer ({type(exc).__name__})")
                time.sleep(1)
                if time.monotonic() > give_up_at:
                    return
                continue
            now = time.monotonic()
            if answer.status_code == 202:
                with self._lock:
                    self.record.accepted[address] = answer.json()["id"]
                    self.record.accepted_at.append(now)
                return
            if answer.status_code != 503 or "Retry-After" not in answer.headers:
                with self._lock:
                    self.record.unexpected.append(f"signup {i}: {answer.status_code} {answer.text[:120]}")
                return
            uncertain = bool(answer.json().get("uncertain_ids"))
            with self._lock:
                self.record.refused += 1
                self.record.refused_at.append(now)
            may_have_landed = may_have_landed or uncertain
            if not may_have_landed:
                key = f"{self.run_id}-{i}-{next(tries)}"  # never sent: a new key is a new signup
            if now > give_up_at:
                with self._lock:
                    self.record.gave_up.append(address)
                return
            time.sleep(float(answer.headers["Retry-After"]))
