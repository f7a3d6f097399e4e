"""`make dev`'s environment: .env.dev's defaults, with the caller's environment winning.

Runs the real honcho on a one-line Procfile that prints what its process sees, with the env
file `make dev` generates (scripts/dev-env.sh).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HONCHO = Path(sys.executable).parent / "honcho"


def caller_environment(**environment: str) -> dict[str, str]:
    """This process's environment without any OFFLOAD_ variable, plus `environment`."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")} | environment


def seen_by_a_process(env_file: Path, tmp_path: Path, **environment: str) -> dict[str, str]:
    procfile = tmp_path / "Procfile"
    procfile.write_text("show: env | grep '^OFFLOAD_'\n")
    env = caller_environment(**environment)
    result = subprocess.run(
        [str(HONCHO), "--no-prefix", "-e", str(env_file), "-f", str(procfile), "start"],
        capture_output=True, text=True, timeout=30, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if line.startswith("OFFLOAD_"))


def dev_env(tmp_path: Path, **environment: str) -> Path:
    env = caller_environment(**environment)
    generated = subprocess.run(
        [str(ROOT / "scripts" / "dev-env.sh"), str(ROOT / ".env.dev")],
        capture_output=True, text=True, timeout=30, env=env, check=True,
    ).stdout  # fmt: skip
    path = tmp_path / "dev.env"
    path.write_text(generated)
    return path


def test_the_embedded_defaults_reach_the_processes(tmp_path):
    seen = seen_by_a_process(dev_env(tmp_path), tmp_path)
    assert seen["OFFLOAD_MAILER_BACKEND"] == "file"
    assert seen["OFFLOAD_MAILER_OUTBOX"] == ".state/outbox"


def test_a_variable_set_by_the_caller_wins_over_the_defaults(tmp_path):
    seen = seen_by_a_process(
        dev_env(tmp_path, OFFLOAD_MAILER_BACKEND="smtp"), tmp_path, OFFLOAD_MAILER_BACKEND="smtp"
    )
    assert seen["OFFLOAD_MAILER_BACKEND"] == "smtp"
    assert seen["OFFLOAD_MAILER_OUTBOX"] == ".state/outbox"  # the other defaults stay


def test_honcho_alone_lets_its_env_file_win(tmp_path):
    """Why scripts/dev-env.sh exists: given .env.dev itself, honcho overrides the caller."""
    seen = seen_by_a_process(ROOT / ".env.dev", tmp_path, OFFLOAD_MAILER_BACKEND="smtp")
    assert seen["OFFLOAD_MAILER_BACKEND"] == "file"


def test_processes_get_time_to_stop_before_a_sigkill(tmp_path):
    """A process that needs 7 s to stop after SIGTERM (the broker needs about 8) exits on
    its own under `make dev`'s process manager; plain honcho kills it after 5 s."""
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        "slow: exec bash -c 'trap \"sleep 7; echo stopped cleanly; exit 0\" TERM; sleep 600 & wait'\n"
        "quick: sleep 1\n"
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dev_processes.py"), "-f", str(procfile), "start"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert "stopped cleanly" in output and "SIGKILL" not in output, output
