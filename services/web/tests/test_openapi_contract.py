"""schemathesis against the running web's /openapi.json: no 5xx, every answer matches the spec.

Runs schemathesis' CLI: its pytest plugin does not load under pytest 9.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_web_api_conforms_to_its_openapi(web):
    schemathesis = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [
            str(schemathesis),
            "run",
            web.url("/openapi.json"),
            "--checks",
            "all",
            "--max-examples",
            "40",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
