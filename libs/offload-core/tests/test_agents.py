"""User-agent families: a bounded set, decided by the header alone."""

from __future__ import annotations

import pytest

from offload_core.agents import FAMILIES, agent_family, bounded_family

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


@pytest.mark.parametrize(
    ("header", "family"),
    [
        (CHROME, "chrome"),
        (CHROME + " Edg/126.0", "edge"),
        (CHROME + " OPR/110.0", "opera"),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "firefox"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
            " Version/17.5 Safari/604.1",
            "safari",
        ),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
        ("curl/8.5.0", "curl"),
        ("python-requests/2.32", "python"),
        ("Go-http-client/1.1", "go"),
        ("", "(none)"),
        ("   ", "(none)"),
        ("x" * 5000, "other"),
        ("chaos-client/1", "other"),
    ],
)
def test_a_header_has_one_family(header, family):
    assert agent_family(header) == family


def test_random_agents_fall_into_the_fixed_set():
    import random
    import string

    rng = random.Random(7)
    seen = {agent_family("".join(rng.choices(string.printable, k=rng.randint(0, 300)))) for _ in range(2000)}
    assert seen <= FAMILIES


def test_a_consumer_counts_an_unknown_family_as_other():
    assert bounded_family("firefox") == "firefox"
    assert bounded_family("Mozilla/5.0 made-up") == "other"
