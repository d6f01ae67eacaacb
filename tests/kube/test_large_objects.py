"""Objects as large as the API server accepts do not stop the watches (issue 10): against the
suite's real API server, an Informer delivers a ConfigMap of about 1 MiB and what comes after it,
lists one among 150 others (a watch list: the list streamed as the watch's initial events),
and a Server made as large as the CRD and the API server allow leaves the operator and the facade
healthy, with the Servers created after it given their host status.

aiohttp's line reader ended the watch on any event over 512 KiB (LineTooLong); Go's JSON writes
<, > and & as 6-byte escapes, so the objects here are made of them: on the wire each event is
several times its stored size.
"""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

from kubernetes import client as k8s

from hoststate import API_GROUP
from hoststate.devcluster.processes import wait_for
from hoststate.facade.app import STATE
from hoststate.kube import KubeClient, Resource
from hoststate.kube.informer import Informer
from tests import kubeobjects
from tests.support.facade import RunningFacade
from tests.support.processes import Operator

CONFIG_MAPS = Resource("", "v1", "configmaps", namespaced=True)
ESCAPED = "<>&"  # 1 byte stored, 6 bytes in the API server's JSON
BIG_MAP_BYTES = 1024 * 1024 - 4096  # a ConfigMap's data may hold 1 MiB


def filler(size: int) -> str:
    return (ESCAPED * (size // len(ESCAPED) + 1))[:size]


async def test_an_informer_delivers_a_config_map_of_1_mib_and_what_follows(
    kube: KubeClient, api_client: k8s.ApiClient, namespace: str
) -> None:
    core = k8s.CoreV1Api(api_client)
    informer = Informer(kube, CONFIG_MAPS, namespace)
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 30)
        big = core.create_namespaced_config_map(
            namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="big"), data={"big": filler(BIG_MAP_BYTES)})
        )
        after = core.create_namespaced_config_map(
            namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="after"), data={"small": "x"})
        )
        assert await informer.wait_for(
            {"metadata": {"namespace": namespace, "name": "after", "resourceVersion": after.metadata.resource_version}},
            timeout=30,
        )
        stored = informer.get("big", namespace)
        assert stored is not None and stored["metadata"]["resourceVersion"] == big.metadata.resource_version
        assert len(stored["data"]["big"]) == BIG_MAP_BYTES
        assert informer.running and informer.watch_errors == 0 and informer.relists == 0
    finally:
        await informer.stop()


async def test_a_watch_list_holds_every_object_one_of_1_mib_too(
    kube: KubeClient, api_client: k8s.ApiClient, namespace: str
) -> None:
    """The list streamed as a watch's initial events (the default) holds every object, more than one
    read of the stream carries and one of about 1 MiB (6 MiB on the wire) among them; then the same
    watch goes on from the version of its closing bookmark."""
    core = k8s.CoreV1Api(api_client)

    def config_map(name: str, value: str) -> k8s.V1ConfigMap:
        return core.create_namespaced_config_map(
            namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=name), data={"value": value})
        )

    small = [config_map(f"small-{i}", f"value {i}") for i in range(150)]
    big = config_map("big", filler(BIG_MAP_BYTES))
    informer = Informer(kube, CONFIG_MAPS, namespace)
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 60)
        names = {obj["metadata"]["name"] for obj in informer.items()}
        assert {f"small-{i}" for i in range(150)} | {"big"} <= names
        assert informer.get("small-149", namespace)["data"] == {"value": "value 149"}
        assert informer.get("big", namespace)["data"]["value"] == big.data["value"]
        assert informer.stream_lists and (informer.watch_errors, informer.relists) == (0, 0)
        assert int(informer.resource_version) >= int(big.metadata.resource_version)
        assert int(informer.resource_version) >= int(small[-1].metadata.resource_version)
        later = config_map("later", "x")
        assert await informer.wait_for(
            {"metadata": {"namespace": namespace, "name": "later", "resourceVersion": later.metadata.resource_version}},
            timeout=30,
        )
        assert (informer.watch_errors, informer.relists) == (0, 0)
    finally:
        await informer.stop()


def largest_server(name: str, host: str) -> dict[str, Any]:
    """A Server at every bound of its CRD, with 250 KiB of annotations (the API server's limit is 256 KiB):
    about as large as etcd stores (1.5 MiB a value; it holds the JSON, escapes included, and
    managedFields repeat the keys)."""
    body = kubeobjects.server(
        name,
        host=host,
        displayName=filler(255),
        metadata={f"{i:03}" + filler(252): filler(255) for i in range(128)},
        addresses={
            f"{i:02}" + filler(253): [{"addr": "fd00::1", "version": 6, "macAddr": "fa:16:3e:00:00:01"}] * 16
            for i in range(32)
        },
    )
    body["metadata"]["annotations"] = {f"example.com/big-{i}": "x" * 25 * 1024 for i in range(10)}
    return body


def wire_size(api_client: k8s.ApiClient, namespace: str, name: str) -> int:
    """Bytes of the object as the API server writes it in JSON (what a watch event carries)."""
    response = k8s.CustomObjectsApi(api_client).get_namespaced_custom_object(
        API_GROUP, "v1alpha1", namespace, "servers", name, _preload_content=False
    )
    return len(response.data)


def healthz(operator: Operator) -> int:
    with urllib.request.urlopen(operator.metrics_url.replace("/metrics", "/healthz"), timeout=5) as response:
        return response.status


def test_a_server_as_large_as_allowed_stops_neither_the_operator_nor_the_facade(
    api_client: k8s.ApiClient,
    custom: k8s.CustomObjectsApi,
    namespace: str,
    unique_host: str,
    operator_handle: Operator,
    operator: Any,
    facade: RunningFacade,
) -> None:
    custom.create_cluster_custom_object(
        API_GROUP, "v1alpha1", "computeservices", kubeobjects.compute_service(unique_host, forcedDown=True)
    )
    custom.create_namespaced_custom_object(
        API_GROUP, "v1alpha1", namespace, "servers", largest_server("big", unique_host)
    )
    assert wire_size(api_client, namespace, "big") > 900 * 1024  # aiohttp's line reader stopped at 512 KiB

    def host_status(name: str) -> str | None:
        obj = custom.get_namespaced_custom_object(API_GROUP, "v1alpha1", namespace, "servers", name)
        return (obj.get("status") or {}).get("hostStatus")

    wait_for(lambda: host_status("big") == "DOWN", timeout=30, what="the big Server to show hostStatus DOWN")
    facade.sync(custom.get_namespaced_custom_object(API_GROUP, "v1alpha1", namespace, "servers", "big"))
    custom.create_namespaced_custom_object(
        API_GROUP, "v1alpha1", namespace, "servers", kubeobjects.server("after", host=unique_host)
    )
    wait_for(lambda: host_status("after") == "DOWN", timeout=30, what="a Server created after it to show DOWN")
    facade.sync(custom.get_namespaced_custom_object(API_GROUP, "v1alpha1", namespace, "servers", "after"))

    async def facade_state() -> tuple[bool, str | None]:
        state = facade.app[STATE]
        seen = state.servers.get("after", namespace) or {}
        return state.healthy, (seen.get("status") or {}).get("hostStatus")

    assert facade.call(facade_state()) == (True, "DOWN")
    assert healthz(operator_handle) == 200
