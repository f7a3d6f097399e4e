"""Settings from the environment: the field table, its parsing and its errors."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from offload_core.config import CoreConfig
from offload_core.settings import ConfigError, from_env, setting


def _even(raw: str) -> int:
    value = int(raw)
    if value % 2:
        raise ValueError("must be even")
    return value


@dataclass(frozen=True)
class Example:
    name: str = setting("X_NAME", "plain")
    count: int = setting("X_COUNT", 3, minimum=1)
    ratio: float = setting("X_RATIO", 0.5, minimum=0)
    enabled: bool = setting("X_ENABLED", False)
    lanes: tuple[str, ...] = setting("X_LANES", ("high",), choices=("high", "low"))
    mode: str = setting("X_MODE", "a", choices=("a", "b", "c"))
    password: str | None = setting("X_PASSWORD", None, secret=True)
    pairs: int = setting("X_PAIRS", 2, parse=_even)
    not_read: str = "constant"


def test_unset_or_empty_variables_keep_the_defaults():
    assert from_env(Example, {}) == Example()
    assert from_env(Example, {"X_COUNT": "  ", "X_NAME": ""}) == Example()


def test_each_type_is_read_from_its_text():
    env = {
        "X_NAME": " ada ",
        "X_COUNT": "7",
        "X_RATIO": "2.5",
        "X_ENABLED": "on",
        "X_LANES": "high, low",
        "X_MODE": "c",
        "X_PASSWORD": "s3cret",
        "X_PAIRS": "4",
    }
    assert from_env(Example, env) == Example("ada", 7, 2.5, True, ("high", "low"), "c", "s3cret", 4)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"X_COUNT": "seven"}, "X_COUNT must be a whole number, not 'seven'"),
        ({"X_COUNT": "2.5"}, "X_COUNT must be a whole number, not '2.5'"),
        ({"X_COUNT": "0"}, "X_COUNT must be at least 1, not '0'"),
        ({"X_RATIO": "half"}, "X_RATIO must be a number, not 'half'"),
        ({"X_RATIO": "nan"}, "X_RATIO must be a number, not 'nan'"),
        ({"X_ENABLED": "maybe"}, "X_ENABLED must be true or false (on or off), not 'maybe'"),
        ({"X_LANES": "high,middle"}, "X_LANES must be one of high, low, not 'high,middle'"),
        ({"X_MODE": "d"}, "X_MODE must be one of a, b, c, not 'd'"),
        ({"X_PAIRS": "3"}, "X_PAIRS must be even, not '3'"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_variable_and_the_value(env, message):
    with pytest.raises(ConfigError) as caught:
        from_env(Example, env)
    assert str(caught.value) == message


def test_a_secret_comes_from_a_file_and_is_never_shown(tmp_path):
    (tmp_path / "password").write_text("from-file\n")
    assert from_env(Example, {"X_PASSWORD_FILE": str(tmp_path / "password")}).password == "from-file"
    with pytest.raises(ConfigError, match="X_PASSWORD_FILE=.* cannot be read"):
        from_env(Example, {"X_PASSWORD_FILE": str(tmp_path / "missing")})


def test_a_broker_url_error_never_shows_the_password():
    with pytest.raises(ConfigError) as caught:
        CoreConfig.from_env({"OFFLOAD_AMQP_URL": "http://user:hunter2@broker:5672/"})
    assert "hunter2" not in str(caught.value) and "OFFLOAD_AMQP_URL" in str(caught.value)


def test_the_core_reads_its_table_and_names_its_service():
    config = CoreConfig.from_env({"OFFLOAD_DELAY_TIERS": "1,2", "OFFLOAD_PREFETCH": "50"}, service_name="web")
    assert (config.delay_tiers, config.prefetch, config.service_name) == ((1.0, 2.0), 50, "web")
    assert CoreConfig.from_env({"OFFLOAD_SERVICE_NAME": "web-2"}, service_name="web").service_name == "web-2"
    with pytest.raises(
        ConfigError, match="OFFLOAD_DELAY_TIERS must list positive, increasing delays in seconds, not '5,1'"
    ):
        CoreConfig.from_env({"OFFLOAD_DELAY_TIERS": "5,1"})
