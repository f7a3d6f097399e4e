"""Release notes from CHANGELOG.md: `release_notes.py VERSION` prints that version's section
(without its heading). Exits 2 when the changelog has no section for VERSION, so a tag whose
notes were not written fails the release workflow instead of publishing empty notes."""

from __future__ import annotations

import re
import sys
from pathlib import Path

CHANGELOG = Path(__file__).resolve().parent.parent / "CHANGELOG.md"
# "## [0.1.0] - 2026-12-03", as keepachangelog.com writes a version's heading.
HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?\s*$")


def versions(text: str) -> list[str]:
    """The versions the changelog has sections for, newest first ("Unreleased" left out)."""
    found = [m["version"] for line in text.splitlines() if (m := HEADING.match(line))]
    return [v for v in found if v.lower() != "unreleased"]


def section(text: str, version: str) -> str | None:
    lines: list[str] = []
    inside = False
    for line in text.splitlines():
        match = HEADING.match(line)
        if match:
            if inside:
                break
            inside = match["version"] == version
            continue
        if inside:
            lines.append(line)
    return "\n".join(lines).strip() + "\n" if inside else None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: release_notes.py VERSION", file=sys.stderr)
        return 2
    notes = section(CHANGELOG.read_text(), argv[1])
    if notes is None or not notes.strip():
        print(f"CHANGELOG.md has no notes for {argv[1]}", file=sys.stderr)
        return 2
    sys.stdout.write(notes)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
