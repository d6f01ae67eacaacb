"""The event a subscriber receives: CloudEvents 1.0, structured mode JSON, signed with HMAC-SHA256.

A receiver verifies an event by recomputing the signature over the raw request body, before
parsing it, with the key from the subscription's Secret:

    expected = "sha256=" + hmac.new(key, raw_body, hashlib.sha256).hexdigest()
    hmac.compare_digest(expected, request.headers["X-Hoststate-Signature"])

and drops duplicates by the event's `id` (a retried or redelivered event keeps its id: ids are
UUIDv5s of the host transition and the Server). In batched mode the body is a JSON array of the
same events, signed as a whole. The body carries
`time`; a receiver that fears replays rejects events older than it cares for.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from .. import API_GROUP, API_VERSION
from ..domain.transitions import ServerTransition
from ..kubetime import kube_micro_time

EVENT_TYPE = "io.hoststate.server.hoststatus.changed"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
# CloudEvents' batched content mode (JSON format spec, section 4): a JSON array of structured events.
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json; charset=utf-8"
SIGNATURE_HEADER = "X-Hoststate-Signature"
SIGNATURE_PREFIX = "sha256="


def build_event(transition: ServerTransition, event_id: str) -> dict[str, Any]:
    """The CloudEvent of one Server transition (the same for every subscription that gets it)."""
    time = kube_micro_time(transition.time)
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{transition.namespace}/servers",
        "type": EVENT_TYPE,
        "subject": transition.name,
        "time": time,
        "datacontenttype": "application/json",
        "data": {
            "server_id": transition.uid,  # the Nova server id: the Server's metadata.uid
            "server_name": transition.name,
            "project_id": transition.namespace,  # the namespace is the project
            "namespace": transition.namespace,
            "host": transition.host,
            "old_host_status": transition.old,
            "new_host_status": transition.new,
            "reason": transition.reason,
            "time": time,
        },
    }


def encode(event: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def encode_batch(bodies: list[bytes]) -> bytes:
    """A batch of encoded events: the JSON array of them, as sent (and signed) in batched mode."""
    return b"[" + b",".join(bodies) + b"]"


def sign(key: bytes, body: bytes) -> str:
    """The signature header's value: sha256=<hex of HMAC-SHA256(key, body)>."""
    return SIGNATURE_PREFIX + hmac.digest(key, body, "sha256").hex()  # one C call: an attempt's CPU counts


def verify(key: bytes, body: bytes, signature: str | None) -> bool:
    """What a receiver does (constant-time comparison)."""
    return signature is not None and hmac.compare_digest(sign(key, body), signature)
