"""schemathesis against the running web's /openapi.json: no 5xx, every answer matches the spec.

Runs schemathesis' CLI: its pytest plugin does not load under pytest 9.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from offload_testkit.stack import IMPORT_HEADERS


def test_web_api_conforms_to_its_openapi(web):
    schemathesis = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [
            str(schemathesis),
            "run",
            web.url("/openapi.json"),
            "--checks",
            "all",
            # JSON Schema cannot say "no two items name one address", which the batch refuses
            # with a 422 (tested in test_api.py), so a schema-valid batch may be refused.
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "40",
            "--seed",
            "1",
            # The batch import's token: its checks include that a call without it is refused.
            "--header",
            f"Authorization: {IMPORT_HEADERS['Authorization']}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
