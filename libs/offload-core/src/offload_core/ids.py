"""Random (version 4) UUIDs: `uuid.uuid4()`, or os.urandom read a block at a time.

`uuid.uuid4()` makes one getrandom() system call per id. Where system calls are dear (a
sandboxed runtime: 15 µs each on the benchmark machine, about a tenth of a whole signup
request's CPU in the web), reading 4 KiB at once serves 256 ids per call. Same source, same
strength; a forked child drops the parent's unread block, so the two never hand out the
same id. Blocks are opt-in (`fewer_syscalls`); by default every id is `uuid.uuid4()`.
"""

from __future__ import annotations

import os
import threading
import uuid

BLOCK_BYTES = 4096

_lock = threading.Lock()
_block = b""
_offset = BLOCK_BYTES
_in_blocks = False


def read_in_blocks(enabled: bool) -> None:
    """Serve ids from blocks of random bytes (`enabled`) or from `uuid.uuid4()`."""
    global _in_blocks
    _in_blocks = enabled


def reading_in_blocks() -> bool:
    return _in_blocks


def random_uuid() -> uuid.UUID:
    """A version 4 UUID: `uuid.uuid4()`, or the same from the current block of random bytes."""
    if not _in_blocks:
        return uuid.uuid4()
    return block_uuid()


def block_uuid() -> uuid.UUID:
    """A version 4 UUID, as uuid.uuid4() makes, from the current block of random bytes."""
    global _block, _offset
    with _lock:
        if _offset >= len(_block):
            _block, _offset = os.urandom(BLOCK_BYTES), 0
        raw = _block[_offset : _offset + 16]
        _offset += 16
    return uuid.UUID(bytes=raw, version=4)


def _forget_block() -> None:
    # A fresh lock too: another thread may have held the parent's at the fork.
    global _block, _offset, _lock
    _lock = threading.Lock()
    _block, _offset = b"", BLOCK_BYTES


os.register_at_fork(after_in_child=_forget_block)
