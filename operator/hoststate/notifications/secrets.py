"""Signing keys: a GET of the one Secret a subscription names, cached for a short while.

Why not an informer: watching Secrets means list/watch on every Secret of every namespace,
the broadest read right there is. A GET needs only `get secrets` (which a cluster admin can
narrow per namespace with RoleBindings) and reads only the Secrets subscriptions name.
The price is freshness: a rotated key is used within `ttl` seconds, a Secret created after
its subscription within `negative_ttl`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from ..kube import SECRETS, ApiError, KubeClient

logger = logging.getLogger(__name__)

MIN_KEY_BYTES = 16


class SigningKeyError(Exception):
    """The signing key cannot be had; `reason` is the subscription's Ready condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass
class _Entry:
    expires: float
    data: dict[str, str] | None = None  # the Secret's data (base64 values)
    error: SigningKeyError | None = None


class SigningKeys:
    def __init__(
        self,
        client: KubeClient,
        *,
        ttl: float = 30.0,
        negative_ttl: float = 5.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._clock = clock
        self._cache: dict[tuple[str, str], _Entry] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[_Entry]] = {}
        self.fetches = 0  # GETs made (for tests and debugging)

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    def forget(self, namespace: str, name: str) -> None:
        self._cache.pop((namespace, name), None)

    async def get(self, namespace: str, name: str, key: str) -> bytes:
        """The key's bytes; SigningKeyError when the Secret, the key or the right to read it is missing."""
        entry = await self._entry(namespace, name)
        if entry.error is not None:
            raise entry.error
        assert entry.data is not None
        if key not in entry.data:
            raise SigningKeyError("SecretKeyMissing", f"Secret {name} has no key {key!r}")
        try:
            value = base64.b64decode(entry.data[key], validate=True)
        except (binascii.Error, ValueError) as error:
            raise SigningKeyError("SecretKeyMissing", f"Secret {name} key {key!r} is not base64: {error}") from None
        if len(value) < MIN_KEY_BYTES:
            raise SigningKeyError(
                "SigningKeyTooShort",
                f"Secret {name} key {key!r} has {len(value)} bytes; at least {MIN_KEY_BYTES} needed",
            )
        return value

    async def _entry(self, namespace: str, name: str) -> _Entry:
        ref = (namespace, name)
        entry = self._cache.get(ref)
        if entry is not None and entry.expires > self._now():
            return entry
        pending = self._inflight.get(ref)
        if pending is None:  # one GET per Secret at a time, however many events wait for it
            pending = asyncio.ensure_future(self._fetch(namespace, name))
            self._inflight[ref] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(ref, None))
        return await asyncio.shield(pending)

    async def _fetch(self, namespace: str, name: str) -> _Entry:
        self.fetches += 1
        try:
            secret = await self.client.get(SECRETS, name, namespace)
        except ApiError as error:
            if error.status == 404:
                failure = SigningKeyError("SecretNotFound", f"Secret {name} not found in namespace {namespace}")
            elif error.status == 403:
                failure = SigningKeyError("SecretForbidden", f"the operator may not get Secret {name}: {error.message}")
            else:
                failure = SigningKeyError("SecretUnavailable", f"Secret {name}: {error}")
            entry = _Entry(self._now() + self.negative_ttl, error=failure)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
            entry = _Entry(self._now() + self.negative_ttl, error=SigningKeyError("SecretUnavailable", repr(error)))
        else:
            entry = _Entry(self._now() + self.ttl, data=dict(secret.get("data") or {}))
        self._cache[(namespace, name)] = entry
        return entry
