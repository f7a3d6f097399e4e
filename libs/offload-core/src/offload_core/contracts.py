"""Message contracts: one JSON Schema per message type and version.

The folder `schemas/` next to this module is the documented API between services
(`schemas/<type>/<version>.json`, plus `envelope.json`). A schema also names the
lanes its type may travel in (`x-offload-lanes`); the first one is the default.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft7Validator

SCHEMA_DIR = Path(__file__).with_name("schemas")


class ContractError(ValueError):
    """A message does not match its contract; `reason` says which rule it broke."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MessageType:
    name: str
    version: int
    lanes: tuple[str, ...]
    validate: Callable[[Any], Any]
    schema: dict[str, Any]

    @property
    def default_lane(self) -> str:
        return self.lanes[0]


def _compile(schema: dict[str, Any]) -> Callable[[Any], Any]:
    # jsonschema checks the schema file itself; fastjsonschema compiles it to Python code
    # because validation runs on every publish and every delivery (about 30x faster here).
    Draft7Validator.check_schema(schema)
    return fastjsonschema.compile(schema)


def _first_error(validate: Callable[[Any], Any], instance: Any) -> str | None:
    try:
        validate(instance)
    except fastjsonschema.JsonSchemaValueException as error:
        return error.message[:500]
    return None


class Contracts:
    """All known message types, loaded once from a schema folder."""

    def __init__(self, schema_dir: Path = SCHEMA_DIR) -> None:
        self._envelope = _compile(json.loads((schema_dir / "envelope.json").read_text()))
        self._types: dict[tuple[str, int], MessageType] = {}
        for path in sorted(schema_dir.glob("*/*.json")):
            schema = json.loads(path.read_text())
            name, version = path.parent.name, int(path.stem)
            lanes = tuple(schema.get("x-offload-lanes", ["normal"]))
            self._types[(name, version)] = MessageType(name, version, lanes, _compile(schema), schema)

    def get(self, name: str, version: int) -> MessageType:
        try:
            return self._types[(name, version)]
        except KeyError:
            raise ContractError(f"unknown message type {name!r} version {version}") from None

    def known(self) -> list[tuple[str, int]]:
        return sorted(self._types)

    def check_envelope(self, body: Any) -> None:
        """Raise ContractError unless `body` is a valid envelope whose data matches its type."""
        problem = _first_error(self._envelope, body)
        if problem:
            raise ContractError(f"envelope {problem}")
        message_type = self.get(body["type"], body["version"])
        problem = _first_error(message_type.validate, body["data"])
        if problem:
            raise ContractError(f"{body['type']} v{body['version']} data {problem}")


@cache
def default_contracts() -> Contracts:
    return Contracts()
