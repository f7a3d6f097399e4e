"""Copy the `# --` comments of charts/offload/values.yaml into values.schema.json as the
values' descriptions, so editors and `helm show values` readers see the same words.

    python scripts/schema_descriptions.py          write the schema
    python scripts/schema_descriptions.py --check  exit 1, naming the values, if it is stale

A comment that starts with `# --` and the `#` lines right after it describe the key on the
next line (helm-docs' convention, which values.yaml already follows). Written here rather
than taken from helm-docs: that is a Go program that writes a README, not a schema.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

CHART = Path(__file__).resolve().parents[1] / "charts" / "offload"
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_]+):")
COMMENT = re.compile(r"^ *# ?(?P<text>.*)$")


def descriptions(values_yaml: str) -> dict[tuple[str, ...], str]:
    """Each described value's path (as keys from the top) and its description."""
    found: dict[tuple[str, ...], str] = {}
    path: list[tuple[int, str]] = []  # (indent, key) of the keys enclosing the current line
    pending: list[str] | None = None  # the comment block being read, if it started with `# --`
    for line in values_yaml.splitlines():
        comment = COMMENT.match(line)
        if comment:
            text = comment.group("text")
            if text.startswith("-- "):
                pending = [text[3:].strip()]
            elif pending is not None:
                pending.append(text.strip())
            continue
        key = KEY.match(line)
        if key is None:
            pending = None if line.strip() else pending
            continue
        indent = len(key.group("indent"))
        while path and path[-1][0] >= indent:
            path.pop()
        path.append((indent, key.group("key")))
        if pending:
            found[tuple(k for _, k in path)] = " ".join(part for part in pending if part)
        pending = None
    return found


def apply(schema: dict, described: dict[tuple[str, ...], str]) -> list[str]:
    """Set each description in `schema`; the paths the schema has no property for."""
    unknown = []
    for path, text in described.items():
        node = schema
        for key in path:
            node = node.get("properties", {}).get(key)
            if node is None:
                break
        if node is None:
            unknown.append(".".join(path))
        else:
            node["description"] = text
    return unknown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--chart", type=Path, default=CHART, help=argparse.SUPPRESS)
    args = parser.parse_args()
    schema_path = args.chart / "values.schema.json"
    current = schema_path.read_text()
    schema = json.loads(current)
    unknown = apply(schema, descriptions((args.chart / "values.yaml").read_text()))
    if unknown:
        print(f"values.yaml describes values the schema does not have: {', '.join(unknown)}", file=sys.stderr)
        return 1
    fresh = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    if args.check:
        if fresh != current:
            print("values.schema.json is stale: run python scripts/schema_descriptions.py", file=sys.stderr)
            return 1
        return 0
    schema_path.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
