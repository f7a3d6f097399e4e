"""No product class keeps more than twelve fields: an object's state should fit on one
screen. Per-connection state belongs to a session object, a group of callbacks to one
owner record, and so on; a class that grows past the limit is split, not excused.

Fields are counted as the distinct `self.<name>` targets assigned in a class's own
methods (dataclass fields are declarations, not state kept by hand, and are not counted).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FIELDS = 12


def product_sources() -> list[Path]:
    roots = [ROOT / "libs" / "offload-core" / "src", *sorted((ROOT / "services").glob("*/src"))]
    return sorted(path for root in roots for path in root.rglob("*.py"))


def fields_per_class(source: str) -> dict[str, set[str]]:
    """Class name → the attributes its methods assign on `self`."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        names: set[str] = set()
        for method in node.body:
            if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for statement in ast.walk(method):
                targets: list[ast.expr] = []
                if isinstance(statement, ast.Assign):
                    targets = statement.targets
                elif isinstance(statement, ast.AnnAssign | ast.AugAssign):
                    targets = [statement.target]
                for target in targets:
                    if (
                        isinstance(target, ast.Attribute)
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "self"
                    ):
                        names.add(target.attr)
        found[node.name] = names
    return found


def oversized(source: str) -> dict[str, int]:
    return {name: len(attrs) for name, attrs in fields_per_class(source).items() if len(attrs) > MAX_FIELDS}


def test_no_product_class_keeps_more_than_twelve_fields() -> None:
    sources = product_sources()
    assert len(sources) > 40, "the product sources were not found"
    over = {
        f"{path.relative_to(ROOT)}:{name}": count
        for path in sources
        for name, count in oversized(path.read_text()).items()
    }
    assert over == {}


def test_the_count_sees_the_runner_and_flags_a_thirteenth_field() -> None:
    """Negative control: the real Runner is counted (so the check reads real classes), and
    one more attribute on it is caught."""
    runner = (ROOT / "libs/offload-core/src/offload_core/runner.py").read_text()
    counted = len(fields_per_class(runner)["Runner"])
    assert 8 <= counted <= MAX_FIELDS
    grown = runner
    for extra in range(MAX_FIELDS - counted + 1):
        grown = grown.replace(
            "        self._stop_by: float | None = None",
            f"        self._extra_{extra} = 0\n        self._stop_by: float | None = None",
            1,
        )
    assert oversized(grown) == {"Runner": MAX_FIELDS + 1}
