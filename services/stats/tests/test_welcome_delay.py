"""Time from accepted signup to welcome email: the bucket quantiles (vectors from
Prometheus's own tests of `histogram_quantile`), what a mail.sent of each version adds,
and the per-minute view over both real stores."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from offload_core.envelope import Envelope
from offload_stats import queries, welcome_delay
from offload_stats.counting import epoch_minute, increments
from offload_stats.welcome_delay import BOUNDS_SECONDS, BUCKETS, bucket_of, delay_seconds, quantile

# promql/testdata/histograms.test, `testhistogram_bucket{start="positive"}` at 50m:
# cumulative 50 (le 0.1), 70 (le 0.2), 110 (le 1), 120 (+Inf); per bucket 50, 20, 40, 10.
PROMETHEUS_BOUNDS = (0.1, 0.2, 1.0)
PROMETHEUS_COUNTS = (50, 20, 40, 10)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.2, 0.048),  # inside the first bucket, which starts at 0
        (0.5, 0.15),
        (0.8, 0.72),
        (1.0, 1.0),  # in the open bucket: the highest finite bound
    ],
)
def test_quantiles_match_prometheus_histogram_quantile(q, expected):
    assert quantile(q, PROMETHEUS_COUNTS, PROMETHEUS_BOUNDS) == pytest.approx(expected)


def test_a_minute_without_mail_has_no_quantile_and_wrong_shapes_are_refused():
    assert quantile(0.95, [0] * BUCKETS) is None
    with pytest.raises(ValueError, match="bucket counts"):
        quantile(0.5, [1, 2])
    with pytest.raises(ValueError, match="between 0 and 1"):
        quantile(1.5, [1] * BUCKETS)


def test_buckets_hold_their_inclusive_upper_bound():
    assert bucket_of(0.0) == 0
    assert bucket_of(BOUNDS_SECONDS[0]) == 0
    assert bucket_of(BOUNDS_SECONDS[0] + 0.001) == 1
    assert bucket_of(BOUNDS_SECONDS[-1] + 1) == BUCKETS - 1


def test_delay_is_the_mails_time_minus_acceptance_and_never_negative():
    assert delay_seconds("2026-01-01T10:00:00Z", "2026-01-01T10:00:02.500Z") == 2.5
    # Web's and the mailer's clocks differ: a mail "before" its signup counts as at once.
    assert delay_seconds("2026-01-01T10:00:03Z", "2026-01-01T10:00:02Z") == 0.0


def sent(signup_id: str, *, accepted_at: str | None, occurred_at: str) -> Envelope:
    data = {"signup_id": signup_id, "fruit": "kiwi"}
    if accepted_at is None:
        return Envelope("mail.sent", data, id=f"mail.sent-{signup_id}", occurred_at=occurred_at)
    data["accepted_at"] = accepted_at
    return Envelope("mail.sent", data, version=2, id=f"mail.sent-{signup_id}", occurred_at=occurred_at)


def test_version_2_adds_one_delay_point_and_version_1_counts_without_one():
    v2 = increments(sent("a", accepted_at="2026-01-01T10:00:00Z", occurred_at="2026-01-01T10:00:04Z"))
    minute = epoch_minute("2026-01-01T10:00:04Z")
    assert v2.series == (("mails_sent", minute, 1), (welcome_delay.series_name(bucket_of(4.0)), minute, 1))
    v1 = increments(sent("b", accepted_at=None, occurred_at="2026-01-01T10:00:04Z"))
    assert v1.series == (("mails_sent", minute, 1),)


def this_minute_at(second: int) -> str:
    """A time in the current minute (a store keeps only the last two days of points)."""
    start = int(time.time()) // 60 * 60
    return datetime.fromtimestamp(start + second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_per_minute_p50_and_p95_over_a_real_store_counting_each_mail_once(store):
    """Twenty mails in one minute at known delays (1..20 s), one of them delivered twice,
    and a version-1 mail without a delay: the minute shows 20 mails, and the quantiles of
    those delays as the buckets give them."""
    base = this_minute_at(0)
    mails = [sent(f"s{i}", accepted_at=base, occurred_at=this_minute_at(i)) for i in range(1, 21)]
    old = sent("old", accepted_at=None, occurred_at=this_minute_at(30))
    assert store.apply([increments(m) for m in [*mails, mails[3], old]]) == 21
    now = epoch_minute(base) * 60 + 59
    [minute] = queries.welcome_delays(store, 1, now=now)
    assert minute.mails == 20
    counts = [0] * BUCKETS
    for seconds in range(1, 21):
        counts[bucket_of(seconds)] += 1
    assert minute.p50_seconds == pytest.approx(quantile(0.5, counts))
    assert minute.p95_seconds == pytest.approx(quantile(0.95, counts))
    # The buckets bound the truth: the exact median of 1..20 s is 10.5 s, the p95 19.05 s.
    assert 10 <= minute.p50_seconds <= 20 and 10 <= minute.p95_seconds <= 20
    assert store.counters("mails") == {"sent": 21}
    # The minute before had no mail: no quantile rather than a made-up zero.
    earlier, _ = queries.welcome_delays(store, 2, now=now)
    assert (earlier.mails, earlier.p50_seconds, earlier.p95_seconds) == (0, None, None)


def test_the_count_of_a_repeated_mail_is_what_the_dedupe_guards(store):
    """Negative control: the same mail under two ids (what a missing dedupe would make of a
    redelivery) counts twice, so the check above is the store's dedupe at work."""
    base = this_minute_at(0)
    mail = sent("x", accepted_at=base, occurred_at=this_minute_at(5))
    twin = Envelope(mail.type, mail.data, version=2, id="another-id", occurred_at=mail.occurred_at)
    store.apply([increments(mail), increments(twin)])
    [minute] = queries.welcome_delays(store, 1, now=epoch_minute(base) * 60 + 59)
    assert minute.mails == 2
