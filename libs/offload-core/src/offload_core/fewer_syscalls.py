"""Opt-in: fewer system calls per message, for runtimes where a system call is dear.

Off by default: users get pika's transport and `uuid.uuid4()` as they ship. On
(`OFFLOAD_FEWER_SYSCALLS=on`), each connection's buffered frames leave in one send()
(`pika_writes`) and ids come from a block of random bytes (`ids`). Both were measured on a
sandboxed runtime (gVisor-like, 10–15 µs a system call), where they pay; on a plain Linux
kernel they are within noise. docs/benchmarks.md gives both runs.

The switch is process-wide, as what it replaces is: the publisher and the runner apply
their config's value when they are built, and every core connection in a process shares one
config.
"""

from __future__ import annotations

from offload_core import ids, pika_writes


def apply(enabled: bool) -> None:
    """Joined writes and block-read ids when `enabled`; pika's and uuid's own otherwise."""
    if enabled:
        pika_writes.install()
    else:
        pika_writes.uninstall()
    ids.read_in_blocks(enabled)


def enabled() -> bool:
    """Whether this process runs with fewer system calls now."""
    return pika_writes.installed() and ids.reading_in_blocks()
