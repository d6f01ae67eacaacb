"""Kopf handlers: thin. They configure Kopf and hand everything to the Operator that
OperatorFactory builds (kept in Kopf's memo).

Only low-level event handlers: no finalizers, no Kopf annotations or progress storage on
users' objects (GitOps diffs stay clean, deletes never wait for a stopped operator).

Servers and heartbeat Leases are watched by informers, not Kopf: every status patch of
a fan-out comes back as a watch event, and Kopf's per-event machinery cost half of the
operator's CPU during a fan-out (profiled, docs/benchmarks.md), CPU the API server needs.
"""

from __future__ import annotations

from typing import Any

import kopf

from .. import API_GROUP, API_VERSION
from .factory import Operator, OperatorFactory


@kopf.on.startup(backoff=1)
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.enabled = False  # we post our own Events, off the hot path
    # No Kopf peering: it would pause the handlers of every replica but one (and so the standbys'
    # indexes). Replicas elect a leader on a Lease instead, and only the leader writes (factory.py).
    settings.peering.standalone = True
    settings.watching.server_timeout = 300
    settings.watching.reconnect_backoff = 1.0
    operator = OperatorFactory(memo.config).create_operator()
    try:
        await operator.start()
    except BaseException:  # Kopf retries the startup: nothing of this attempt may keep running
        await operator.stop()
        raise
    memo.operator = operator


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    if "operator" in memo:
        operator: Operator = memo.operator
        await operator.stop()


@kopf.on.event(API_GROUP, API_VERSION, "computeservices")
async def compute_service_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    operator: Operator = memo.operator
    operator.compute_service_event(event["type"], body)
