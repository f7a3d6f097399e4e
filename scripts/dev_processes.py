"""`make dev`'s process manager: honcho, with time for the broker to stop cleanly.

honcho sends SIGKILL 5 s after SIGTERM (`honcho.manager.KILL_WAIT`, which it offers no
option for). A RabbitMQ node needs about 8 s on two cores to stop, so under plain honcho
every Ctrl-C of `make dev` killed the broker mid-shutdown.
"""

from __future__ import annotations

import os
import sys

import honcho.manager
from honcho.command import main

honcho.manager.KILL_WAIT = int(os.environ.get("OFFLOAD_DEV_KILL_WAIT", "30"))

if __name__ == "__main__":
    sys.exit(main())
