"""The committed CRD YAML is exactly what the pydantic models generate."""

from collections.abc import Iterator
from pathlib import Path

import yaml

from hoststate.resources.crd import ALL_CRDS, SERVER, crd_manifest, file_name, render

CRD_DIR = Path(__file__).resolve().parents[2] / "deploy" / "crds"


def subschemas(node: dict, path: str) -> Iterator[tuple[str, dict]]:
    """`node` and every schema below it, depth first, each with its path: `.name` for a property,
    `[]` for a list's items, `{}` for a map's values."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from subschemas(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from subschemas(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from subschemas(node["additionalProperties"], f"{path}{{}}")


def test_committed_crds_match_the_models() -> None:
    for info in ALL_CRDS:
        committed = (CRD_DIR / file_name(info)).read_text()
        assert committed == render(info), (
            f"deploy/crds/{file_name(info)} drifted from the models: run `make crds` and commit"
        )


def test_no_stray_crd_files() -> None:
    assert sorted(p.name for p in CRD_DIR.glob("*.yaml") if p.name != "kustomization.yaml") == sorted(
        file_name(i) for i in ALL_CRDS
    )


def test_schemas_are_structural_and_described() -> None:
    """Every property has a type and a description, so `kubectl explain` teaches a newcomer."""

    for info in ALL_CRDS:
        schema = crd_manifest(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in subschemas(schema, info.kind):
            assert "type" in node or "x-kubernetes-int-or-string" in node, f"{path} has no type"
            assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
            for name, sub in node.get("properties", {}).items():
                # The API server forbids descriptions under metadata.
                if (path.count(".") >= 1 or name in ("spec", "status")) and not path.endswith(".metadata"):
                    assert sub.get("description"), f"{path}.{name} has no description"
        yaml.safe_dump(schema)


def test_every_string_list_and_map_is_bounded() -> None:
    """No field lets an object grow without bound (issue 12): strings have a maxLength (or an enum
    or a format), lists a maxItems, maps a maxProperties and a CEL rule on their keys' length."""
    unbounded = []
    for info in ALL_CRDS:
        schema = crd_manifest(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for part in ("spec", "status"):
            for path, node in subschemas(schema["properties"][part], f"{info.kind}.{part}"):
                kind = node.get("type")
                if kind == "string" and not {"maxLength", "enum", "format"} & node.keys():
                    unbounded.append(f"{path}: no maxLength")
                if kind == "array" and "maxItems" not in node:
                    unbounded.append(f"{path}: no maxItems")
                if kind == "object" and isinstance(node.get("additionalProperties"), dict):
                    if "maxProperties" not in node:
                        unbounded.append(f"{path}: no maxProperties")
                    if not any("size(k) <=" in rule["rule"] for rule in node.get("x-kubernetes-validations", [])):
                        unbounded.append(f"{path}: no bound on key length")
    assert not unbounded, unbounded


def test_map_key_bounds_become_cel_rules() -> None:
    """pydantic's propertyNames (dropped by structural schemas) become the CEL rule that bounds keys."""
    metadata = crd_manifest(SERVER)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["metadata"]
    assert metadata["maxProperties"] == 128 and metadata["additionalProperties"]["maxLength"] == 255
    assert metadata["x-kubernetes-validations"] == [
        {"rule": "self.all(k, size(k) >= 1 && size(k) <= 255)", "message": "keys must be 1 to 255 characters long"}
    ]
