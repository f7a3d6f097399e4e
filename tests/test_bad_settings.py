"""Every process refuses a bad setting with one line that names the variable: no traceback,
nothing started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent

CASES = [
    (
        [str(BIN / "offload-mailer")],
        {"OFFLOAD_PREFETCH": "ten"},
        "OFFLOAD_PREFETCH must be a whole number, not 'ten'",
    ),
    ([str(BIN / "offload-mailer")], {"OFFLOAD_SMTP_SECURITY": "ssl"}, "must be one of none, starttls, tls"),
    ([str(BIN / "offload-stats-runner")], {"OFFLOAD_STATS_BATCH_SIZE": "0"}, "must be at least 1"),
    (
        [str(BIN / "offload-autoscaler")],
        {"OFFLOAD_AUTOSCALER_STATUS_PORT": "http"},
        "OFFLOAD_AUTOSCALER_STATUS_PORT must be a whole number, not 'http'",
    ),
    (
        [str(BIN / "gunicorn"), "-c", "python:offload_web.gunicorn_conf", "offload_web.wsgi:app"],
        {"OFFLOAD_WEB_WORKERS": "two"},
        "OFFLOAD_WEB_WORKERS must be a whole number, not 'two'",
    ),
    (
        [str(BIN / "gunicorn"), "-c", "python:offload_stats.gunicorn_conf", "offload_stats.wsgi:app"],
        {"OFFLOAD_STATS_THREADS": "-1"},
        "OFFLOAD_STATS_THREADS must be at least 1, not '-1'",
    ),
]


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # An address where nothing listens: a process that got past its settings would hang or
    # retry there, not exit at once.
    base = {"PATH": str(BIN), "OFFLOAD_AMQP_URL": "amqp://guest:guest@127.0.0.1:9/%2F"}
    return subprocess.run(argv, env=base | env, cwd=cwd, capture_output=True, text=True, timeout=60)


def refused_cleanly(result: subprocess.CompletedProcess[str], message: str) -> bool:
    output = result.stdout + result.stderr
    return result.returncode != 0 and message in output and "Traceback" not in output


@pytest.mark.parametrize(("argv", "env", "message"), CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_a_bad_setting_is_one_line_naming_the_variable(argv, env, message, tmp_path):
    result = _run(argv, env, tmp_path)
    assert refused_cleanly(result, message), result.stdout + result.stderr


def test_the_check_catches_a_traceback(tmp_path):
    """Negative control: a bare int() of a bad value is what the check above refuses."""
    result = _run(
        [sys.executable, "-c", "import os; int(os.environ['OFFLOAD_PREFETCH'])"],
        {"OFFLOAD_PREFETCH": "ten"},
        tmp_path,
    )
    assert not refused_cleanly(result, "invalid literal")
    assert "invalid literal" in result.stderr
