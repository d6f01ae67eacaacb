"""CustomResourceDefinitions generated from the pydantic models (the single source of truth).

`python -m hoststate.resources.crd deploy/crds` writes one YAML file per CRD; a test
fails when the committed files drift from what this module generates.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from .. import API_GROUP, API_VERSION
from .computeservice import NAME_RULE, ComputeService
from .server import SELECTABLE_FIELDS, Server
from .subscription import HostStatusSubscription

# Keywords a structural CRD schema accepts from JSON Schema (others are dropped).
_KEPT_KEYWORDS = {
    "type",
    "description",
    "default",
    "enum",
    "format",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "required",
    "properties",
    "items",
    "additionalProperties",
}


@dataclass(frozen=True)
class CRDInfo:
    """What a CRD says beyond its schema."""

    model: type[BaseModel]
    kind: str
    plural: str
    short_names: list[str]
    scope: str
    printer_columns: list[dict[str, Any]]
    root_validations: list[dict[str, str]] = field(default_factory=list)
    selectable_fields: list[dict[str, str]] = field(default_factory=list)
    categories: list[str] = field(default_factory=lambda: ["hoststate"])

    @property
    def name(self) -> str:
        return f"{self.plural}.{API_GROUP}"


COMPUTE_SERVICE = CRDInfo(
    model=ComputeService,
    kind="ComputeService",
    plural="computeservices",
    short_names=["csvc"],
    scope="Cluster",
    # As `nova service-list` prints them.
    printer_columns=[
        {"name": "Host", "type": "string", "jsonPath": ".spec.host"},
        {"name": "Binary", "type": "string", "jsonPath": ".spec.binary"},
        {"name": "Zone", "type": "string", "jsonPath": ".spec.zone"},
        {"name": "Status", "type": "string", "jsonPath": ".status.serviceStatus"},
        {"name": "State", "type": "string", "jsonPath": ".status.state"},
        {"name": "Forced Down", "type": "boolean", "jsonPath": ".spec.forcedDown"},
        {"name": "Host Status", "type": "string", "jsonPath": ".status.hostStatus", "priority": 1},
        {"name": "Updated At", "type": "date", "jsonPath": ".status.lastHeartbeatTime"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    root_validations=[NAME_RULE],
)

SERVER = CRDInfo(
    model=Server,
    kind="Server",
    plural="servers",
    short_names=["srv"],
    scope="Namespaced",
    # As the seed's novaclient table prints them.
    printer_columns=[
        {"name": "Display Name", "type": "string", "jsonPath": ".spec.displayName"},
        {"name": "Status", "type": "string", "jsonPath": ".spec.vmState"},
        {"name": "Host", "type": "string", "jsonPath": ".spec.host"},
        {"name": "Host Status", "type": "string", "jsonPath": ".status.hostStatus"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    selectable_fields=SELECTABLE_FIELDS,
)

HOST_STATUS_SUBSCRIPTION = CRDInfo(
    model=HostStatusSubscription,
    kind="HostStatusSubscription",
    plural="hoststatussubscriptions",
    short_names=["hss"],
    scope="Namespaced",
    printer_columns=[
        {"name": "URL", "type": "string", "jsonPath": ".spec.url"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Delivered", "type": "integer", "jsonPath": ".status.delivered"},
        {"name": "Failures", "type": "integer", "jsonPath": ".status.consecutiveFailures"},
        {"name": "Last Success", "type": "date", "jsonPath": ".status.lastSuccessTime"},
        {"name": "Last Error", "type": "string", "jsonPath": ".status.lastError", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
)

ALL_CRDS = [COMPUTE_SERVICE, SERVER, HOST_STATUS_SUBSCRIPTION]


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline $refs, fold Optional (anyOf with null) away, keep only structural keywords."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    if "anyOf" in node:
        # `X | None`: Kubernetes omits absent fields instead of storing null.
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"unsupported union in CRD schema: {node}")
        merged = {**_resolve(branches[0], defs), **{k: v for k, v in node.items() if k != "anyOf"}}
        if merged.get("default", ...) is None:
            del merged["default"]
        return _resolve(merged, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _resolve(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _resolve(value, defs)
        elif key == "additionalProperties":
            # `extra="forbid"`: structural schemas prune unknown fields instead, and the API
            # server rejects them under strict field validation (kubectl's default).
            continue
        elif key in _KEPT_KEYWORDS or key.startswith("x-kubernetes-"):
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("type") == "object" and "additionalProperties" not in out and "properties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("type") == "array" and "maxItems" not in out and "maxLength" in node:
        out["maxItems"] = out.pop("maxLength")
    if out.get("type") == "object" and "maxLength" in node:
        out["maxProperties"] = node["maxLength"]
        out.pop("maxLength", None)
    if "propertyNames" in node:
        out["x-kubernetes-validations"] = [*out.get("x-kubernetes-validations", []), _key_length_rule(node)]
    return out


def _key_length_rule(node: dict[str, Any]) -> dict[str, str]:
    """The CEL rule for a map's key length (structural schemas drop propertyNames). CEL's size()
    counts characters, as maxLength does."""
    names = node["propertyNames"]
    if set(names) - {"minLength", "maxLength"} or "maxLength" not in names:
        raise ValueError(f"unsupported propertyNames in CRD schema: {names}")
    if "maxProperties" not in node and "maxLength" not in node:
        raise ValueError(f"a map with bounded keys needs a bounded size (the rule's cost): {node}")
    low, high = names.get("minLength", 0), names["maxLength"]
    if low:
        return {
            "rule": f"self.all(k, size(k) >= {low} && size(k) <= {high})",
            "message": f"keys must be {low} to {high} characters long",
        }
    return {"rule": f"self.all(k, size(k) <= {high})", "message": f"keys must be at most {high} characters long"}


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model as a structural OpenAPI v3 schema for a CRD."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _resolve(raw, raw.get("$defs", {}))


def crd_manifest(info: CRDInfo) -> dict[str, Any]:
    schema = openapi_schema(info.model)
    schema["description"] = (info.model.__doc__ or "").strip()
    schema["properties"] = {
        "apiVersion": {"type": "string", "description": "APIVersion of this object."},
        "kind": {"type": "string", "description": "Kind of this object."},
        # Declared so that the name rule can point at it (fieldPath); CRDs may constrain only
        # name and generateName here, which the name rule does instead.
        # Declared so that the name rule can point at it (fieldPath); the API server allows
        # nothing more here (no descriptions, no constraints but on name and generateName).
        "metadata": {"type": "object", "properties": {"name": {"type": "string"}}},
        **schema["properties"],
    }
    if info.root_validations:
        schema["x-kubernetes-validations"] = info.root_validations
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": info.name},
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.kind.lower(),
                "shortNames": info.short_names,
                "categories": info.categories,
            },
            "scope": info.scope,
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": info.printer_columns,
                    **({"selectableFields": info.selectable_fields} if info.selectable_fields else {}),
                }
            ],
        },
    }


HEADER = "# Generated by `python -m hoststate.resources.crd` from operator/hoststate/resources/. Do not edit.\n"


def render(info: CRDInfo) -> str:
    return HEADER + yaml.safe_dump(crd_manifest(info), sort_keys=False, width=100)


def file_name(info: CRDInfo) -> str:
    return f"{API_GROUP}_{info.plural}.yaml"


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for info in ALL_CRDS:
        path = directory / file_name(info)
        path.write_text(render(info))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "deploy/crds")):
        print(path)
