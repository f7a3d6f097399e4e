"""JSON schemas for kubeconform, made offline from the sources the API server itself uses.

Built-in kinds come from Kubernetes' OpenAPI (swagger 2.0) document; custom resources from
their CRDs' openAPIV3Schema. Layout, as kubeconform's -schema-location templates expect:

    <out>/{{ .ResourceKind }}{{ .KindSuffix }}.json  (deployment-apps-v1.json)
    <out>/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json (keda.sh/scaledobject_v1alpha1.json)

Schemas are strict (an unknown field is an error), like kubeconform's -strict schema sets.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import yaml

INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
# Quantities are written as 1, 0.5 or "512Mi".
QUANTITY = {"oneOf": [{"type": "string"}, {"type": "number"}]}


def strict(node: Any) -> Any:
    """Close every object that lists its properties, unless it says it keeps unknown fields."""
    if isinstance(node, dict):
        node = {k: strict(v) for k, v in node.items()}
        if node.get("x-kubernetes-int-or-string"):
            return INT_OR_STRING
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


def referenced(definitions: dict[str, Any], root: Any) -> set[str]:
    found: set[str] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/definitions/"):
                name = ref.removeprefix("#/definitions/")
                if name not in found:
                    found.add(name)
                    stack.append(definitions[name])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def builtin_schemas(openapi: Path, out: Path) -> int:
    definitions: dict[str, Any] = json.loads(openapi.read_text())["definitions"]
    definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = INT_OR_STRING
    definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = QUANTITY
    written = 0
    for definition in list(definitions.values()):
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            group, version, kind = gvk["group"], gvk["version"], gvk["kind"]
            suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
            schema = copy.deepcopy(definition)
            needed = referenced(definitions, schema)
            schema["definitions"] = {n: definitions[n] for n in sorted(needed)}
            schema["$schema"] = "http://json-schema.org/draft-04/schema#"
            # apiVersion and kind must name this kind exactly.
            api_version = f"{group}/{version}" if group else version
            schema.setdefault("properties", {})["apiVersion"] = {"type": "string", "enum": [api_version]}
            schema["properties"]["kind"] = {"type": "string", "enum": [kind]}
            (out / f"{kind.lower()}{suffix}.json").write_text(json.dumps(strict(schema)))
            written += 1
    return written


def crd_schemas(crd_files: list[Path], out: Path) -> int:
    written = 0
    for path in crd_files:
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd:
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                schema["$schema"] = "http://json-schema.org/draft-07/schema#"
                # The API server fills in and checks metadata; CRDs leave it open.
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                folder = out / group
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{kind.lower()}_{version['name']}.json").write_text(json.dumps(strict(schema)))
                written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument(
        "--openapi", type=Path, required=True, help="Kubernetes api/openapi-spec/swagger.json"
    )
    parser.add_argument(
        "--crds", type=Path, nargs="*", default=[], help="CustomResourceDefinition YAML files"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    builtin = builtin_schemas(args.openapi, args.out)
    custom = crd_schemas(args.crds, args.out)
    print(f"kube_schemas: {builtin} built-in and {custom} custom resource schemas in {args.out}")


if __name__ == "__main__":
    main()
