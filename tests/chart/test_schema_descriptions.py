"""Every chart value is described in values.schema.json, in the words of its `# --`
comment in values.yaml (scripts/schema_descriptions.py copies them over)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "offload"
SCRIPT = ROOT / "scripts" / "schema_descriptions.py"


def check(chart: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--chart", str(chart)], capture_output=True, text=True
    )


def test_the_schema_carries_the_values_comments():
    result = check(CHART)
    assert result.returncode == 0, result.stderr


def test_a_changed_comment_makes_the_schema_stale(tmp_path):
    """Negative control: the check sees a comment the schema does not carry."""
    chart = tmp_path / "offload"
    shutil.copytree(CHART, chart)
    values = chart / "values.yaml"
    values.write_text(values.read_text().replace("# -- Pull policy of the Offload images.", "# -- Changed."))
    result = check(chart)
    assert result.returncode == 1 and "stale" in result.stderr


def undescribed(
    values: Any, schema: dict[str, Any] | None, path: str = "", covered: bool = False
) -> list[str]:
    """Values with no description on themselves or on a map that holds them."""
    covered = covered or "description" in (schema or {})
    if isinstance(values, dict) and values and schema is not None and "properties" in schema:
        return [
            name
            for key, value in values.items()
            for name in undescribed(
                value, schema["properties"].get(key), f"{path}.{key}".lstrip("."), covered
            )
        ]
    return [] if covered else [path]


def test_every_value_is_described():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert undescribed(values, schema) == []
    # Control: without descriptions, every value is reported.
    bare = json.loads(json.dumps(schema).replace('"description":', '"x-gone":'))
    assert len(undescribed(values, bare)) > 150
