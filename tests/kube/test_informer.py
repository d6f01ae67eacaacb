"""The facade's watch cache (hoststate.kube.Informer) against the real API server: when a watch
answers 410 Gone, it relists, and the store and its handlers catch up with what changed.

How the 410 is provoked: an informer resumed (stopped, then started again) holds the
resourceVersion of its last event and watches from there. The test hands it resourceVersion
"1", what an informer resumed after a long outage would hold: older than anything the API
server's watch cache keeps (it starts at the version it first listed Servers at, after the
CRD was installed), so the server answers the watch with 410 "too old resource version",
exactly as it does once etcd has compacted a version away.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from kubernetes import client as k8s

from hoststate import API_GROUP
from hoststate.kube import SERVERS, KubeClient
from hoststate.kube.informer import Informer
from tests import kubeobjects


def create(custom: k8s.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return custom.create_namespaced_custom_object(API_GROUP, "v1alpha1", namespace, "servers", kubeobjects.server(name))


async def test_relists_after_410_gone(
    kube: KubeClient, custom: k8s.CustomObjectsApi, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    informer = Informer(kube, SERVERS, namespace)
    events: list[tuple[str, str]] = []
    informer.add_handler(lambda kind, old, new: events.append((kind, (new or old or {})["metadata"]["name"])))

    kept, gone = create(custom, namespace, "kept"), create(custom, namespace, "gone")
    informer.start()
    assert await informer.wait_for(kept, timeout=30) and await informer.wait_for(gone, timeout=30)
    assert informer.relists == 0
    await informer.stop()

    # While it is stopped: one server deleted, one created, one changed. No watch will tell it.
    custom.delete_namespaced_custom_object(API_GROUP, "v1alpha1", namespace, "servers", "gone")
    added = create(custom, namespace, "added")
    changed = custom.patch_namespaced_custom_object(
        API_GROUP, "v1alpha1", namespace, "servers", "kept", {"spec": {"displayName": "renamed"}}
    )
    events.clear()
    informer.resource_version = "1"

    with caplog.at_level(logging.INFO, logger="hoststate.kube.informer"):
        informer.start()
        assert await informer.wait_for(added, timeout=30)
        assert await informer.wait_for(gone, deleted=True, timeout=30)
        assert await informer.wait_for(changed, timeout=30)
    try:
        assert informer.relists == 1
        assert "resourceVersion 1 expired, relisting" in caplog.text
        # The relist told the handlers what the missed events would have.
        assert sorted(events) == [("ADDED", "added"), ("DELETED", "gone"), ("MODIFIED", "kept")]
        assert {obj["metadata"]["name"] for obj in informer.items()} == {"kept", "added"}
        assert informer.get("kept", namespace)["spec"]["displayName"] == "renamed"
        assert int(informer.resource_version) >= int(changed["metadata"]["resourceVersion"])

        # And it keeps watching from the relist's version.
        later = create(custom, namespace, "later")
        assert await informer.wait_for(later, timeout=30)
        # (The suite's operator may have written its status since: ADDED need not be the last event.)
        assert ("ADDED", "later") in events and informer.relists == 1
    finally:
        await informer.stop()


async def test_resumes_without_relisting_when_the_version_is_current(
    kube: KubeClient, custom: k8s.CustomObjectsApi, namespace: str
) -> None:
    informer = Informer(kube, SERVERS, namespace)
    first = create(custom, namespace, "first")
    informer.start()
    assert await informer.wait_for(first, timeout=30)
    await informer.stop()
    second = create(custom, namespace, "second")  # missed while stopped, but the watch replays it
    informer.start()
    try:
        assert await informer.wait_for(second, timeout=30)
        assert informer.relists == 0
    finally:
        await informer.stop()


async def test_lists_in_pages(kube: KubeClient, custom: k8s.CustomObjectsApi, namespace: str) -> None:
    """A list read page by page (continue tokens, when lists are not streamed) holds every object,
    and watching resumes from its version."""
    created = [create(custom, namespace, f"paged-{i}") for i in range(5)]
    informer = Informer(kube, SERVERS, namespace, list_page_size=2, stream_lists=False)
    informer.start()
    try:
        await informer.synced.wait()
        assert {obj["metadata"]["name"] for obj in informer.items()} == {f"paged-{i}" for i in range(5)}
        assert int(informer.resource_version) >= int(created[-1]["metadata"]["resourceVersion"])
        later = create(custom, namespace, "paged-later")
        assert await informer.wait_for(later, timeout=30)
        assert informer.relists == 0
    finally:
        await informer.stop()
