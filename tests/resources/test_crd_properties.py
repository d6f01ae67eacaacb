"""Property-based CRD tests (issue 12 item 8): hypothesis generates ComputeServices, Servers and
HostStatusSubscriptions, valid and invalid; the real API server accepts every valid one and
refuses every invalid one with a 422 whose message names the field. Valid Servers and
ComputeServices are reconciled by the operator.

Bounds (maxLength, maxItems, maxProperties, minimum, maximum, enums) are read from the generated
CRDs in deploy/crds/, so the strategies follow the CRDs as they change; a bound a CRD does not
declare yet gets a modest default for valid objects and no "too big" case.
"""

from __future__ import annotations

import json
import re
import string
import uuid
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from hoststate.devcluster.processes import HoststateProcess, wait_for
from hoststate.resources.computeservice import service_name
from tests.kubeobjects import API

GROUP, VERSION = "hoststate.io", "v1alpha1"
CRDS = Path(__file__).resolve().parents[2] / "deploy" / "crds"
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
DEFAULT_MAX_ITEMS = 8  # for valid objects, where a CRD declares no bound yet
DEFAULT_MAX_LENGTH = 255


# -- the CRDs' schema ------------------------------------------------------------------------
@cache
def spec_schema(plural: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / f"hoststate.io_{plural}.yaml").read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def node(plural: str, path: str) -> dict[str, Any]:
    """The schema at `path` under spec: names are properties, `[]` items, `{}` map values."""
    current = spec_schema(plural)
    for part in path.split("."):
        if part == "[]":
            current = current["items"]
        elif part == "{}":
            current = current["additionalProperties"]
        else:
            current = current["properties"][part]
    return current


def key_bound(schema: dict[str, Any]) -> int | None:
    """A map's bound on key length, which CRDs can state only in CEL (`size(k) <= N`)."""
    for rule in schema.get("x-kubernetes-validations", []):
        match = re.search(r"size\(\w+\)\s*<=\s*(\d+)", rule["rule"])
        if match:
            return int(match.group(1))
    return None


# -- strategies ------------------------------------------------------------------------------
TEXT = st.characters(codec="utf-8")


def text(schema: dict[str, Any], min_size: int | None = None) -> st.SearchStrategy[str]:
    """Strings within the schema's length bounds, the longest allowed among them."""
    low = schema.get("minLength", 0) if min_size is None else min_size
    high = schema.get("maxLength", DEFAULT_MAX_LENGTH)
    return st.one_of(st.text(TEXT, min_size=low, max_size=min(high, 40)), st.text(TEXT, min_size=high, max_size=high))


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def dns_label(max_size: int = 20) -> st.SearchStrategy[str]:
    return st.from_regex(rf"\A[a-z0-9]([-a-z0-9]{{0,{max_size - 2}}}[a-z0-9])?\Z")


@st.composite
def nova_host(draw: st.DrawFn, max_size: int) -> str:
    """A host whose ComputeService name (lower-cased, '_' to '-') is a valid DNS subdomain: labels
    of letters and digits with '-' or '_' inside, in any case."""
    labels = draw(st.lists(st.from_regex(r"\A[a-zA-Z0-9]([-_a-zA-Z0-9]{0,14}[a-zA-Z0-9])?\Z"), min_size=1, max_size=4))
    return ".".join(labels)[:max_size].rstrip("-_.") or "h"


def without_nones(spec: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in spec.items() if value is not None}


# ComputeService
SVC = "computeservices"


@st.composite
def valid_service_spec(draw: st.DrawFn) -> dict[str, Any]:
    binary = draw(st.one_of(st.just("nova-compute"), dns_label(min(node(SVC, "binary")["maxLength"], 30))))
    disabled = draw(st.booleans())
    return without_nones(
        {
            # Room for the unique suffix and `.<binary>` in a 253-character name.
            "host": draw(nova_host(min(node(SVC, "host")["maxLength"], 253 - len(binary) - 1 - 9))),
            "binary": binary,
            "zone": draw(optional(text(node(SVC, "zone")))),
            "disabled": disabled,
            "disabledReason": draw(optional(text(node(SVC, "disabledReason")))) if disabled else None,
            "forcedDown": draw(st.booleans()),
        }
    )


def service_body(spec: dict[str, Any]) -> dict[str, Any]:
    """A ComputeService with a host no other example uses (they are cluster-scoped)."""
    spec = {**spec, "host": f"{spec['host']}-{uuid.uuid4().hex[:8]}"}
    return {
        "apiVersion": API,
        "kind": "ComputeService",
        "metadata": {"name": service_name(spec["host"], spec["binary"])},
        "spec": spec,
    }


Mutation = Callable[[st.DrawFn, dict[str, Any]], str]  # changes the object, returns the field path


def too_long(field: str, plural: str) -> Mutation:
    def mutate(draw: st.DrawFn, obj: dict[str, Any]) -> str:
        obj["spec"][field] = "x" * (node(plural, field)["maxLength"] + draw(st.integers(1, 50)))
        return f"spec.{field}"

    return mutate


def out_of_enum(field: str, plural: str) -> Mutation:
    def mutate(draw: st.DrawFn, obj: dict[str, Any]) -> str:
        allowed = node(plural, field)["enum"]
        obj["spec"][field] = draw(
            st.text(string.ascii_letters, min_size=1, max_size=12).filter(lambda v: v not in allowed)
        )
        return f"spec.{field}"

    return mutate


def out_of_range(field: str, plural: str) -> Mutation:
    def mutate(draw: st.DrawFn, obj: dict[str, Any]) -> str:
        schema = node(plural, field)
        obj["spec"][field] = draw(
            st.one_of(st.integers(max_value=schema["minimum"] - 1), st.integers(min_value=schema["maximum"] + 1))
        )
        return f"spec.{field}"

    return mutate


def set_to(path: str, value: Any) -> Mutation:
    def mutate(draw: st.DrawFn, obj: dict[str, Any]) -> str:
        target = obj
        *parents, last = path.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
        return path

    return mutate


def string_bounds(plural: str) -> list[Mutation]:
    """A too-long value for every top-level string field that has a maxLength."""
    return [
        too_long(field, plural)
        for field, schema in spec_schema(plural)["properties"].items()
        if schema.get("type") == "string" and "maxLength" in schema and "pattern" not in schema
    ]


def service_mutations() -> list[Mutation]:
    def bad_host(draw: st.DrawFn, obj: dict[str, Any]) -> str:
        obj["spec"]["host"] += draw(st.sampled_from([" ", "/", "!", "é", "@", "*"]))
        return "spec.host"

    def host_too_long(draw: st.DrawFn, obj: dict[str, Any]) -> str:
        obj["spec"]["host"] = "h" * (node(SVC, "host")["maxLength"] + draw(st.integers(1, 20)))
        return "spec.host"

    def reason_without_disabled(draw: st.DrawFn, obj: dict[str, Any]) -> str:
        obj["spec"].update(disabled=False, disabledReason=draw(text(node(SVC, "disabledReason"), min_size=1)))
        return "spec.disabledReason"

    def wrong_name(draw: st.DrawFn, obj: dict[str, Any]) -> str:
        obj["metadata"]["name"] = f"other-{uuid.uuid4().hex[:8]}.{obj['spec']['binary']}"
        return "metadata.name"

    def bad_binary(draw: st.DrawFn, obj: dict[str, Any]) -> str:
        obj["spec"]["binary"] = draw(st.sampled_from(["Nova_Compute", "-nova", "nova compute", ""]))
        obj["metadata"]["name"] = f"{obj['metadata']['name'].split('.')[0]}.x"
        return "spec.binary"

    return [
        bad_host,
        host_too_long,
        reason_without_disabled,
        wrong_name,
        bad_binary,
        set_to("spec.zone", ""),
        set_to("spec.forcedDown", "yes"),
        set_to("spec.disabled", 1),
        *string_bounds(SVC),
    ]


# Server
SRV = "servers"


@st.composite
def address(draw: st.DrawFn) -> dict[str, Any]:
    return without_nones(
        {
            "addr": draw(text(node(SRV, "addresses.{}.[].addr"), min_size=1)),
            "version": draw(optional(st.sampled_from(node(SRV, "addresses.{}.[].version")["enum"]))),
            "type": draw(optional(st.sampled_from(node(SRV, "addresses.{}.[].type")["enum"]))),
            "macAddr": draw(optional(st.from_regex(r"\A([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}\Z"))),
        }
    )


def bounded_map(schema: dict[str, Any], values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    keys = st.text(TEXT, min_size=1, max_size=min(key_bound(schema) or DEFAULT_MAX_LENGTH, 40))
    return st.dictionaries(keys, values, max_size=min(schema.get("maxProperties", DEFAULT_MAX_ITEMS), 8))


@st.composite
def valid_server_spec(draw: st.DrawFn) -> dict[str, Any]:
    strings = {
        field: draw(optional(text(schema)))
        for field, schema in spec_schema(SRV)["properties"].items()
        if schema.get("type") == "string" and "enum" not in schema and "pattern" not in schema
    }
    addresses_schema, metadata_schema = node(SRV, "addresses"), node(SRV, "metadata")
    address_list = st.lists(address(), max_size=min(addresses_schema["additionalProperties"].get("maxItems", 4), 4))
    return without_nones(
        {
            **strings,
            "host": draw(st.one_of(st.just(""), nova_host(node(SRV, "host")["maxLength"]))),
            "vmState": draw(optional(st.sampled_from(node(SRV, "vmState")["enum"]))),
            "powerState": draw(
                optional(st.integers(node(SRV, "powerState")["minimum"], node(SRV, "powerState")["maximum"]))
            ),
            "addresses": draw(optional(bounded_map(addresses_schema, address_list))),
            "metadata": draw(optional(bounded_map(metadata_schema, text(metadata_schema["additionalProperties"])))),
        }
    )


def server_body(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Server", "metadata": {"name": f"s-{uuid.uuid4().hex[:12]}"}, "spec": spec}


def too_many(path: str, plural: str, entry: Callable[[int], tuple[str, Any]]) -> Mutation | None:
    """One entry more than the map's maxProperties, or None while the CRD has no bound."""
    bound = node(plural, path).get("maxProperties")
    if bound is None:
        return None

    def mutate(draw: st.DrawFn, obj: dict[str, Any]) -> str:
        obj["spec"][path] = dict(entry(i) for i in range(bound + 1))
        return f"spec.{path}"

    return mutate


def server_mutations() -> list[Mutation]:
    metadata = node(SRV, "metadata")
    value_bound = metadata["additionalProperties"].get("maxLength")
    keys_bound = key_bound(metadata)
    address_items_bound = node(SRV, "addresses.{}").get("maxItems")
    mutations: list[Mutation | None] = [
        set_to("spec.host", "bad host!"),
        set_to("spec.host", "h" * (node(SRV, "host")["maxLength"] + 1)),
        set_to("spec.displayName", ""),
        set_to("spec.addresses", {"private": [{"addr": "10.0.0.1", "version": 5}]}),
        set_to("spec.addresses", {"private": [{"addr": "10.0.0.1", "macAddr": "not-a-mac"}]}),
        set_to("spec.addresses", {"private": [{"addr": "1" * (node(SRV, "addresses.{}.[].addr")["maxLength"] + 1)}]}),
        set_to("spec.addresses", {"private": [{"version": 4}]}),
        set_to("spec.metadata", {"key": 1}),
        out_of_enum("vmState", SRV),
        out_of_range("powerState", SRV),
        too_many("addresses", SRV, lambda i: (f"net{i}", [])),
        too_many("metadata", SRV, lambda i: (f"key{i}", "v")),
        set_to("spec.metadata", {"key": "v" * (value_bound + 1)}) if value_bound else None,
        set_to("spec.metadata", {"k" * (keys_bound + 1): "v"}) if keys_bound else None,
        set_to("spec.addresses", {"private": [{"addr": "10.0.0.1"}] * (address_items_bound + 1)})
        if address_items_bound
        else None,
        *string_bounds(SRV),
    ]
    return [mutation for mutation in mutations if mutation is not None]


# HostStatusSubscription
HSS = "hoststatussubscriptions"
LABEL_VALUE = st.from_regex(r"\A(([A-Za-z0-9][-A-Za-z0-9_.]{0,20})?[A-Za-z0-9])?\Z")
LABEL_KEY = st.builds(
    lambda prefix, name: f"{prefix}/{name}" if prefix else name,
    optional(st.builds(".".join, st.lists(dns_label(10), min_size=1, max_size=3))),
    st.from_regex(r"\A[A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?\Z"),
)


@st.composite
def webhook_url(draw: st.DrawFn) -> str:
    host = draw(
        st.one_of(
            st.builds(
                lambda labels: "https://" + ".".join([*labels, "example.com"]), st.lists(dns_label(), max_size=3)
            ),
            st.builds(lambda port: f"http://localhost:{port}", st.integers(1, 65535)),
            st.builds(lambda name: f"http://{name}.svc", dns_label()),
            st.builds(lambda name: f"http://{name}.hooks.svc.cluster.local", dns_label()),
            st.just("http://127.0.0.1:8080"),
        )
    )
    path = draw(st.from_regex(r"\A(/[A-Za-z0-9._~-]{0,20}){0,4}(\?[A-Za-z0-9=&]{0,20})?\Z"))
    return (host + path)[: node(HSS, "url")["maxLength"]]


@st.composite
def requirement(draw: st.DrawFn) -> dict[str, Any]:
    operator = draw(st.sampled_from(node(HSS, "serverSelector.matchExpressions.[].operator")["enum"]))
    values_bound = min(node(HSS, "serverSelector.matchExpressions.[].values")["maxItems"], 4)
    values = draw(st.lists(LABEL_VALUE, min_size=1, max_size=values_bound)) if operator in ("In", "NotIn") else None
    return without_nones({"key": draw(LABEL_KEY), "operator": operator, "values": values})


@st.composite
def valid_subscription_spec(draw: st.DrawFn) -> dict[str, Any]:
    statuses = node(HSS, "hostStatuses")
    selector = st.builds(
        lambda labels, expressions: without_nones({"matchLabels": labels, "matchExpressions": expressions}),
        optional(st.dictionaries(LABEL_KEY, LABEL_VALUE, max_size=4)),
        optional(st.lists(requirement(), max_size=3)),
    )
    return without_nones(
        {
            "url": draw(webhook_url()),
            "serverSelector": draw(optional(selector)),
            "hostStatuses": draw(
                optional(
                    st.lists(
                        st.sampled_from(statuses["items"]["enum"]),
                        min_size=statuses.get("minItems", 1),
                        max_size=statuses["maxItems"],
                        unique=True,
                    )
                )
            ),
            "signingKeySecretRef": without_nones(
                {
                    "name": draw(st.builds(".".join, st.lists(dns_label(), min_size=1, max_size=3))),
                    "key": draw(optional(st.from_regex(r"\A[-._a-zA-Z0-9]{1,30}\Z"))),
                }
            ),
            "maxRetries": draw(
                optional(st.integers(node(HSS, "maxRetries")["minimum"], node(HSS, "maxRetries")["maximum"]))
            ),
            "timeoutSeconds": draw(
                optional(st.integers(node(HSS, "timeoutSeconds")["minimum"], node(HSS, "timeoutSeconds")["maximum"]))
            ),
        }
    )


def subscription_body(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "HostStatusSubscription",
        "metadata": {"name": f"hss-{uuid.uuid4().hex[:12]}"},
        "spec": spec,
    }


def subscription_mutations() -> list[Mutation]:
    url_bound = node(HSS, "url")["maxLength"]
    statuses = node(HSS, "hostStatuses")
    expressions_bound = node(HSS, "serverSelector.matchExpressions")["maxItems"]
    return [
        set_to("spec.url", "http://hooks.example.com/x"),  # http outside the cluster
        set_to("spec.url", "https://user:secret@hooks.example.com/"),
        set_to("spec.url", "https://169.254.169.254/latest/meta-data"),
        set_to("spec.url", "https://[fe80::1]/"),
        set_to("spec.url", "ftp://hooks.example.com/"),
        set_to("spec.url", "not a url"),
        set_to("spec.url", ""),
        set_to("spec.url", "https://hooks.example.com/" + "p" * url_bound),
        set_to("spec.hostStatuses", []),
        set_to("spec.hostStatuses", ["UP", "UP"]),
        set_to("spec.hostStatuses", ["up"]),
        set_to("spec.hostStatuses", [*statuses["items"]["enum"], "UP"]),
        out_of_range("maxRetries", HSS),
        out_of_range("timeoutSeconds", HSS),
        set_to("spec.signingKeySecretRef.name", "Bad_Name"),
        set_to("spec.signingKeySecretRef.key", "no/slashes"),
        set_to("spec.serverSelector.matchExpressions", [{"key": "tier", "operator": "In"}]),
        set_to("spec.serverSelector.matchExpressions", [{"key": "tier", "operator": "Exists", "values": ["a"]}]),
        set_to("spec.serverSelector.matchExpressions", [{"key": "tier", "operator": "Near"}]),
        set_to("spec.serverSelector.matchExpressions", [{"key": "t", "operator": "Exists"}] * (expressions_bound + 1)),
        set_to("spec.serverSelector.matchLabels", {"-bad-key": "v"}),
        set_to("spec.serverSelector.matchLabels", {"tier": "v" * 64}),
    ]


@st.composite
def invalid(draw: st.DrawFn, valid: st.SearchStrategy[dict], body: Callable, mutations: list[Mutation]) -> tuple:
    obj = body(draw(valid))
    path = draw(st.sampled_from(mutations))(draw, obj)
    return obj, path


def kept(sent: Any, stored: Any) -> bool:
    """The API server stored what was sent (plus defaults)."""
    if isinstance(sent, dict):
        return isinstance(stored, dict) and all(k in stored and kept(v, stored[k]) for k, v in sent.items())
    if isinstance(sent, list):
        return isinstance(stored, list) and len(sent) == len(stored) and all(map(kept, sent, stored))
    return sent == stored


# -- the API server ----------------------------------------------------------------------
class Objects:
    def __init__(self, custom: k8s.CustomObjectsApi, namespace: str) -> None:
        self.custom = custom
        self.namespace = namespace

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        plural = {"ComputeService": SVC, "Server": SRV, "HostStatusSubscription": HSS}[obj["kind"]]
        if plural == SVC:
            return self.custom.create_cluster_custom_object(GROUP, VERSION, plural, obj)
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, obj)

    def delete(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if obj["kind"] == "ComputeService":
            self.custom.delete_cluster_custom_object(GROUP, VERSION, SVC, name)
        else:
            plural = SRV if obj["kind"] == "Server" else HSS
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name)

    def get(self, obj: dict[str, Any]) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        if obj["kind"] == "ComputeService":
            return self.custom.get_cluster_custom_object(GROUP, VERSION, SVC, name)
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, SRV, name)

    def accepted(self, obj: dict[str, Any]) -> dict[str, Any]:
        try:
            created = self.create(obj)
        except ApiException as error:
            raise AssertionError(
                f"valid {obj['kind']} refused ({error.status}): {error.body}\n{json.dumps(obj)}"
            ) from None
        assert kept(obj["spec"], created["spec"]), f"{obj['spec']} stored as {created['spec']}"
        return created

    def refused(self, obj: dict[str, Any], path: str) -> None:
        with pytest.raises(ApiException) as caught:
            created = self.create(obj)
            self.delete(created)
        message = json.loads(caught.value.body)["message"]
        assert caught.value.status == 422, message
        assert path in message, f"{path} not named in: {message}"


@pytest.fixture(scope="module")
def objects(api_client: k8s.ApiClient, custom: k8s.CustomObjectsApi) -> Objects:
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    k8s.CoreV1Api(api_client).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
    return Objects(custom, namespace)


KINDS = {
    "ComputeService": (valid_service_spec(), service_body, service_mutations()),
    "Server": (valid_server_spec(), server_body, server_mutations()),
    "HostStatusSubscription": (valid_subscription_spec(), subscription_body, subscription_mutations()),
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_valid_object_is_accepted(objects: Objects, kind: str) -> None:
    valid, body, _ = KINDS[kind]

    @SETTINGS
    @given(spec=valid)
    def check(spec: dict[str, Any]) -> None:
        created = objects.accepted(body(spec))
        objects.delete(created)

    check()


@pytest.mark.parametrize("kind", KINDS)
def test_every_invalid_object_is_refused_with_the_field_named(objects: Objects, kind: str) -> None:
    valid, body, mutations = KINDS[kind]

    @SETTINGS
    @given(case=invalid(valid, body, mutations))
    def check(case: tuple[dict[str, Any], str]) -> None:
        objects.refused(*case)

    check()


def expected_host_status(spec: dict[str, Any]) -> set[str]:
    """Nova's rule for a service without heartbeats: UP until the down time passes, then UNKNOWN."""
    if spec.get("forcedDown"):
        return {"DOWN"}
    if spec.get("disabled"):
        return {"MAINTENANCE"}
    return {"UP", "UNKNOWN"}


def test_valid_services_and_servers_are_reconciled(objects: Objects, operator: HoststateProcess) -> None:
    """A few generated pairs: the operator writes the service's host status on it and its server."""

    @settings(SETTINGS, max_examples=6)
    @given(service_spec=valid_service_spec(), server_spec=valid_server_spec())
    def check(service_spec: dict[str, Any], server_spec: dict[str, Any]) -> None:
        service = objects.accepted(service_body({**service_spec, "binary": "nova-compute"}))
        server = objects.accepted(server_body({**server_spec, "host": service["spec"]["host"]}))
        expected = expected_host_status(service["spec"])
        try:
            for obj in (service, server):
                wait_for(
                    lambda obj=obj: (objects.get(obj).get("status") or {}).get("hostStatus") in expected,
                    timeout=20,
                    what=f"{obj['kind']} {obj['metadata']['name']} to show hostStatus in {expected}",
                )
        finally:
            objects.delete(server)
            objects.delete(service)

    check()
