"""Every AMQP header the core writes or reads, named once.

Ours (`x-offload-*`, and the enqueue time) travel with a message through retries and
parking; RabbitMQ's (`x-death` and the `x-first-death-*` / `x-last-death-*` summaries) are
added by the broker when it dead-letters a message.
"""

from __future__ import annotations

ENQUEUED_AT_HEADER = "x-enqueued-at-ms"  # when the message was first published, for time on queue
LANE_HEADER = "x-offload-lane"  # high, normal or low: which queue of a runner it waits in
ATTEMPT_HEADER = "x-offload-attempt"  # deliveries so far through the delay tiers
PARK_REASON_HEADER = "x-offload-park-reason"  # why the runner parked it
PARKED_FROM_HEADER = "x-offload-parked-from"  # the queue it was parked from
PARKED_AT_HEADER = "x-offload-parked-at-ms"
LAST_ERROR_HEADER = "x-offload-last-error"  # the handler's last error, shortened

DEATH_HEADER = "x-death"  # RabbitMQ's dead-lettering history
DEATH_SUMMARY_HEADERS = (
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
)

# What a replay from the parking queue strips, so the message starts over as first published.
PARKING_TRAIL_HEADERS = (
    DEATH_HEADER,
    *DEATH_SUMMARY_HEADERS,
    PARKED_AT_HEADER,
    PARKED_FROM_HEADER,
    LAST_ERROR_HEADER,
    PARK_REASON_HEADER,
    ATTEMPT_HEADER,
)
