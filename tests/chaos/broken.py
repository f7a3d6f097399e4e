"""Service variants for tests only: each switches one mechanism off or adds one fault, so a
check can show it fails without the mechanism it guards (a negative control), or meet a
message that really crashes its runner.

    python tests/chaos/broken.py mailer-without-dedupe   the sent-store records sends, is never consulted
    python tests/chaos/broken.py stats-without-dedupe    every delivery of an event is counted
    python tests/chaos/broken.py mailer-crashing         SIGKILLs itself on a signup named POISON_NAME
    python tests/chaos/broken.py mailer-welcoming-every-signup   the address claim never refuses

These are not fakes of the services: each is the real service's main with one function
swapped before it starts.
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

POISON_NAME = "Poison Pill"


class _AmnesiacSentStore:
    """Writes what was sent (so a test can still read the store) but never says a signup was
    sent and never refuses a claim: the mailer's dedupe switched off."""

    def __init__(self, store: object) -> None:
        self._store = store

    def was_sent(self, signup_id: str) -> bool:
        return False

    def claim(self, signup_id: str, owner: str, seconds: float) -> bool:
        return True

    def release(self, signup_id: str, owner: str) -> None:
        pass

    def mark_sent(self, signup_id: str) -> None:
        self._store.mark_sent(signup_id)  # type: ignore[attr-defined]  # the wrapped store is any SentStore

    def claim_address(self, address_key: str, signup_id: str, seconds: float) -> str:
        return signup_id

    def release_address(self, address_key: str, signup_id: str) -> None:
        pass


class _ClaimlessSentStore:
    """The real store, except that every signup gets the address it names: one welcome per
    signup instead of per address (the signup's own dedupe still works)."""

    def __init__(self, store: object) -> None:
        self._store = store

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def claim_address(self, address_key: str, signup_id: str, seconds: float) -> str:
        return signup_id


def _mailer_welcoming_every_signup() -> None:
    from offload_mailer import main as mailer_main

    real_open = mailer_main.open_store
    mailer_main.open_store = lambda url: _ClaimlessSentStore(real_open(url))  # type: ignore[assignment,return-value]  # a proxy of the real store
    mailer_main.main()


def _mailer_without_dedupe() -> None:
    from offload_mailer import main as mailer_main

    real_open = mailer_main.open_store
    mailer_main.open_store = lambda url: _AmnesiacSentStore(real_open(url))
    mailer_main.main()


def _stats_without_dedupe() -> None:
    import dataclasses

    from offload_stats import runner_main

    real_open = runner_main.open_store

    def open_counting_everything(url: str):
        store = real_open(url)
        apply = store.apply

        def apply_all(batch):
            # A fresh id per delivery: the store's dedupe never sees the same id twice.
            return apply(
                [dataclasses.replace(item, event_id=f"{item.event_id}:{uuid.uuid4()}") for item in batch]
            )

        store.apply = apply_all  # type: ignore[method-assign]  # the switched-off mechanism, swapped in on purpose
        return store

    runner_main.open_store = open_counting_everything
    runner_main.main()


def _mailer_crashing() -> None:
    from offload_mailer import handler
    from offload_mailer import main as mailer_main

    real_handle = handler.WelcomeMailer.handle

    def handle(self, message):
        if message.data.get("name") == POISON_NAME:
            os.kill(os.getpid(), signal.SIGKILL)  # a crash no handler code can catch
        return real_handle(self, message)

    handler.WelcomeMailer.handle = handle  # type: ignore[method-assign]  # the fault, swapped in on purpose
    mailer_main.main()


VARIANTS: dict[str, Callable[[], None]] = {
    "mailer-without-dedupe": _mailer_without_dedupe,
    "stats-without-dedupe": _stats_without_dedupe,
    "mailer-crashing": _mailer_crashing,
    "mailer-welcoming-every-signup": _mailer_welcoming_every_signup,
}


def argv(variant: str) -> list[str]:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    # Run by path: the variant needs the installed services, not the checkout on sys.path.
    return [sys.executable, str(Path(__file__).resolve()), variant]


def main(args: Sequence[str] = sys.argv[1:]) -> None:
    if len(args) != 1 or args[0] not in VARIANTS:
        sys.exit(f"usage: python tests/chaos/broken.py {{{','.join(VARIANTS)}}}")
    VARIANTS[args[0]]()


if __name__ == "__main__":
    main()
