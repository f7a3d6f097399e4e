"""Programs of a RabbitMQ tree (scripts/rabbitmq-tree.sh: Debian trixie's RabbitMQ 4.0 on a
bookworm host) run through a mount namespace and chroot.

The host's /proc, /dev, /sys and /tmp, and any directory asked for, are bound into the tree
at the same paths, so a node's data, logs and config are the same files inside and out. No
PID or network namespace: the node's PID is the one the caller started (kill -9 lands on it)
and its ports are the host's.

    python -m offload_testkit.rabbitmq_tree [--bind DIR ...] PROGRAM [ARG ...]

runs one program of the tree named by OFFLOAD_RABBITMQ_TREE (`make dev`'s broker does).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

TREE_ENV = "OFFLOAD_RABBITMQ_TREE"
ALWAYS_BOUND = ("/proc", "/dev", "/sys", "/tmp")
# $1: the tree; $2: how many directories to bind; then those; then the program and its args.
_ENTER = """
root=$1; count=$2; shift 2
while [ "$count" -gt 0 ]; do
  mkdir -p "$root$1" && mount --rbind "$1" "$root$1"
  shift; count=$((count - 1))
done
exec chroot "$root" "$@"
"""


def configured_tree() -> Path | None:
    """The tree `make` built, or None where only the host's RabbitMQ is."""
    value = os.environ.get(TREE_ENV)
    return Path(value) if value else None


def tree_command(tree: Path, program: str, *args: str, binds: Sequence[Path] = ()) -> list[str]:
    """argv that runs `program` (a path inside the tree) with the caller's environment."""
    bound = [*ALWAYS_BOUND, *(str(Path(b).resolve()) for b in binds)]
    # Root enters the namespace as it is; anyone else as root of a user namespace of their own.
    as_root = [] if os.geteuid() == 0 else ["--map-root-user"]
    enter = ["unshare", "--mount", *as_root, "--propagation", "private", "--", "sh", "-c", _ENTER, "sh"]
    return [*enter, str(tree), str(len(bound)), *bound, program, *args]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m offload_testkit.rabbitmq_tree", description=__doc__)
    parser.add_argument("--bind", action="append", default=[], type=Path, help="a host directory to see")
    parser.add_argument("program")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    tree = configured_tree()
    if tree is None:
        sys.exit(f"{TREE_ENV} is not set: build the tree with scripts/rabbitmq-tree.sh and name it there")
    command = tree_command(tree, args.program, *args.args, binds=args.bind)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
