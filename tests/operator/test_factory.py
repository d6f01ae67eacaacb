"""The operator's start-up against the suite's API server: everything is read at once, and yet the
first Server events are handled with every host's state known (a restart into a converged fleet
would otherwise flap its servers to "").

The operator is built in process (OperatorFactory), as a standby of the suite's operator (the same
election Lease, which the suite's operator holds): it reads everything and writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc

import pytest
from kubernetes import client as k8s

from hoststate import API_GROUP
from hoststate.devcluster import DevCluster
from hoststate.devcluster.processes import HoststateProcess
from hoststate.operator.config import add_arguments, from_arguments
from hoststate.operator.factory import OperatorFactory
from tests import kubeobjects
from tests.support.processes import LEASE_NAMESPACE

SERVERS = 50


async def test_the_first_server_events_see_every_hosts_state(
    cluster: DevCluster,
    custom: k8s.CustomObjectsApi,
    namespace: str,
    unique_host: str,
    operator: HoststateProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    custom.create_cluster_custom_object(
        API_GROUP, "v1alpha1", "computeservices", kubeobjects.compute_service(unique_host, forcedDown=True)
    )
    for index in range(SERVERS):
        custom.create_namespaced_custom_object(
            API_GROUP, "v1alpha1", namespace, "servers", kubeobjects.server(f"vm-{index}", host=unique_host)
        )
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = from_arguments(
        parser.parse_args([f"--namespace={namespace}", f"--lease-namespace={LEASE_NAMESPACE}", "--metrics-port=0"])
    )
    standby = OperatorFactory(config).create_operator()
    seen: list[str] = []  # the host status each Server's first event is handled with
    standby.server_informers[0].add_handler(
        lambda kind, old, new: seen.append(standby.reconciler.desired_host_status(new["spec"]["host"]).value)
    )
    gc.unfreeze()  # (what earlier tests in this process froze)
    try:
        await standby.start()
        for _ in range(600):
            if standby.ready() and gc.get_freeze_count():
                break
            await asyncio.sleep(0.1)
        assert standby.ready()
        assert seen == ["DOWN"] * SERVERS
        # Listed: what it holds is out of the collector's sight (heap.py), its indexes among it.
        assert gc.get_freeze_count() > 0
        assert not any(held is standby.reconciler.servers.by_key for held in gc.get_objects())
    finally:
        await standby.stop()
        gc.unfreeze()
