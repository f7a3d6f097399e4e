"""offload_core.fields: one parser per type for environment strings and YAML scalars alike,
and one error line that names the field and never shows a secret."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from offload_core.fields import FieldSpec, convert, declare, declared, problem
from offload_core.settings import ConfigError, from_env


@dataclass(frozen=True)
class Switches:
    enabled: bool = declare("X_ENABLED", False)
    count: int = declare("X_COUNT", 1, minimum=1)
    token: str = declare("X_TOKEN", "none", secret=True)


@pytest.mark.parametrize(
    ("hint", "value", "parsed"),
    [
        (bool, "on", True),
        (bool, "TRUE", True),
        (bool, True, True),
        (bool, "0", False),
        (int, "10", 10),
        (int, 10, 10),
        (int, "10.0", 10),
        (float, "2.5", 2.5),
        (float, 3, 3.0),
        (tuple[str, ...], "a, b,,c", ("a", "b", "c")),
        (tuple[float, ...], [1, "2"], (1.0, 2.0)),
        (str | None, "x", "x"),
    ],
)
def test_one_parser_per_type_takes_strings_and_yaml_scalars(hint, value, parsed):
    assert convert(FieldSpec("X"), hint, value) == parsed


@pytest.mark.parametrize(
    ("hint", "value", "must"),
    [
        (bool, "maybe", "must be true or false (on or off)"),
        (bool, 1, "must be true or false (on or off)"),
        (int, "2.5", "must be a whole number"),
        (int, True, "must be a whole number"),  # YAML's true is no count
        (float, "nan", "must be a number"),
        (float, "inf", "must be a number"),
        (str, "", "must be a non-empty string"),
        (str, 5, "must be a non-empty string"),
    ],
)
def test_a_value_of_the_wrong_kind_says_what_it_must_be(hint, value, must):
    with pytest.raises(ValueError, match=must.replace("(", r"\(").replace(")", r"\)")):
        convert(FieldSpec("X"), hint, value)


def test_bounds_and_choices_are_checked_after_parsing():
    assert convert(FieldSpec("X", minimum=1), int, "1") == 1
    with pytest.raises(ValueError, match="must be at least 1"):
        convert(FieldSpec("X", minimum=1), int, "0")
    with pytest.raises(ValueError, match="must be one of a, b"):
        convert(FieldSpec("X", choices=("a", "b")), tuple[str, ...], "a,c")


def test_the_error_line_names_the_path_and_shows_the_value_unless_secret():
    error = ValueError("must be a whole number")
    assert (
        problem("X_COUNT", FieldSpec("X_COUNT"), "two", error) == "X_COUNT must be a whole number, not 'two'"
    )
    secret = problem("X_TOKEN", FieldSpec("X_TOKEN", secret=True), "hunter2", error)
    assert secret == "X_TOKEN must be a whole number" and "hunter2" not in secret


def test_a_secret_setting_never_shows_its_value():
    @dataclass(frozen=True)
    class Secretive:
        limit: int = declare("X_LIMIT", 1, secret=True)

    with pytest.raises(ConfigError) as caught:
        from_env(Secretive, {"X_LIMIT": "s3cret-value"})
    assert str(caught.value) == "X_LIMIT must be a whole number"


def test_declared_lists_only_fields_that_name_their_source():
    @dataclass(frozen=True)
    class Mixed:
        read: int = declare("X_READ", 1)
        computed: int = 2

    assert [spec.name for _, spec in declared(Mixed)] == ["X_READ"]
