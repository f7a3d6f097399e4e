"""offload_core.ids: version 4 UUIDs as uuid.uuid4() makes them, never repeated across a fork
when read in blocks, and uuid.uuid4() itself by default."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from offload_core import ids


@pytest.fixture(autouse=True)
def in_blocks() -> Iterator[None]:
    ids.read_in_blocks(True)
    yield
    ids.read_in_blocks(False)


def test_by_default_ids_are_uuid4s_own(monkeypatch):
    ids.read_in_blocks(False)
    made = uuid.UUID(int=4, version=4)
    monkeypatch.setattr(uuid, "uuid4", lambda: made)
    assert ids.random_uuid() is made
    ids.read_in_blocks(True)
    assert ids.random_uuid() is not made


def test_ids_are_version_4_rfc_4122_uuids_and_distinct_across_blocks():
    made = [ids.random_uuid() for _ in range(3 * ids.BLOCK_BYTES // 16 + 5)]  # several blocks
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in made)
    assert len(set(made)) == len(made)


def ids_after_fork(child_setup=None) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """Ten ids from a forked child and the next ten from the parent."""
    ids.random_uuid()  # the parent holds a partly used block at the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write its ids and leave without running the parent's cleanup
        try:
            if child_setup is not None:
                child_setup()
            os.write(write, b"".join(ids.random_uuid().bytes for _ in range(10)))
        finally:
            os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 4096):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    child = {uuid.UUID(bytes=data[i : i + 16]) for i in range(0, len(data), 16)}
    parent = {ids.random_uuid() for _ in range(10)}
    return child, parent


def test_a_forked_child_never_hands_out_the_parents_next_ids():
    child, parent = ids_after_fork()
    assert len(child) == 10 and not child & parent


def test_without_the_fork_handler_the_child_repeats_the_parents_ids():
    """Negative control: the child gets the parent's unread block back, as it would if the
    fork handler did not drop it; the same check then sees the repeats."""
    ids._forget_block()
    ids.random_uuid()  # a fresh block, so the parent's next twenty ids all come from it
    block, offset = ids._block, ids._offset + 16  # the state at the fork, after one more id

    def keep_parents_block() -> None:
        ids._block, ids._offset = block, offset

    child, parent = ids_after_fork(keep_parents_block)
    assert child & parent
