"""The logging settings: read like every other table, but a bad one never stops a process
(logging is what reports bad settings): it falls back to its default and says so."""

from __future__ import annotations

from offload_core.logs import LogSettings, log_settings


def test_settings_are_read_case_insensitively_with_defaults():
    assert log_settings({}) == (LogSettings("json", "INFO"), [])
    assert log_settings({"OFFLOAD_LOG_FORMAT": "TEXT", "OFFLOAD_LOG_LEVEL": "warning"}) == (
        LogSettings("text", "WARNING"),
        [],
    )


def test_a_bad_setting_falls_back_alone_and_is_reported():
    settings, problems = log_settings({"OFFLOAD_LOG_FORMAT": "text", "OFFLOAD_LOG_LEVEL": "loud"})
    assert settings == LogSettings("text", "INFO")  # the good one kept
    assert len(problems) == 1 and "OFFLOAD_LOG_LEVEL" in problems[0] and "default" in problems[0]
