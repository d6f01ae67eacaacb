"""Signing keys: a GET of the one Secret a subscription names, cached for a short while.

Why not an informer: watching Secrets means list/watch on every Secret of every namespace,
the broadest read right there is. A GET needs only `get secrets` (which a cluster admin can
narrow per namespace with RoleBindings) and reads only the Secrets subscriptions name.
The price is freshness: a rotated key is used within `ttl` seconds, a Secret created after
its subscription within `negative_ttl`. The leader refreshes the keys of the subscriptions it
serves ahead of `ttl` (notifier.py), so that an event is never the one waiting for the GET.

The messages (a subscription's Ready condition) name the Secret and what is wrong with it,
never anything of its value (not even a short key's length) nor the API server's own words.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass

import aiohttp

from ..kube import SECRETS, ApiError, KubeClient
from ..ttl_cache import TTLCache

logger = logging.getLogger(__name__)

MIN_KEY_BYTES = 16


class SigningKeyError(Exception):
    """The signing key cannot be had; `reason` is the subscription's Ready condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class _Secret:
    data: dict[str, str] | None = None  # the Secret's data (base64 values)
    error: SigningKeyError | None = None


class SigningKeys:
    def __init__(self, client: KubeClient, *, ttl: float = 30.0, negative_ttl: float = 5.0) -> None:
        self.client = client
        self._secrets: TTLCache[_Secret] = TTLCache(lambda secret: negative_ttl if secret.error else ttl)

    def forget(self, namespace: str, name: str) -> None:
        self._secrets.forget((namespace, name))

    async def refresh(self, namespace: str, name: str) -> None:
        """GET the Secret again and replace what is cached only then: events never wait meanwhile. An
        API server away keeps the cached answer (until it expires)."""
        secret = await self._fetch(namespace, name)
        if secret.error is None or secret.error.reason != "SecretUnavailable":
            self._secrets.put((namespace, name), secret)

    async def get(self, namespace: str, name: str, key: str) -> bytes:
        """The key's bytes; SigningKeyError when the Secret, the key or the right to read it is missing."""
        # One GET per Secret at a time, however many events wait for it.
        secret = await self._secrets.get((namespace, name), lambda: self._fetch(namespace, name))
        if secret.error is not None:
            raise secret.error
        assert secret.data is not None
        if key not in secret.data:
            raise SigningKeyError("SecretKeyMissing", f"Secret {name} has no key {key!r}")
        try:
            value = base64.b64decode(secret.data[key], validate=True)
        except (binascii.Error, ValueError):  # the decoder's message would count the value's characters
            raise SigningKeyError("SecretKeyMissing", f"Secret {name} key {key!r} is not valid base64") from None
        if len(value) < MIN_KEY_BYTES:
            raise SigningKeyError(
                "SigningKeyTooShort", f"Secret {name} key {key!r} is too short: at least {MIN_KEY_BYTES} bytes needed"
            )
        return value

    async def _fetch(self, namespace: str, name: str) -> _Secret:
        try:
            secret = await self.client.get(SECRETS, name, namespace)
        except ApiError as error:
            if error.status == 404:
                return _Secret(
                    error=SigningKeyError("SecretNotFound", f"Secret {name} not found in namespace {namespace}")
                )
            if error.status == 403:
                return _Secret(
                    error=SigningKeyError("SecretForbidden", f"the operator may not get Secret {name} (its RBAC)")
                )
            logger.warning("Secret %s/%s not read: %s", namespace, name, error)
            return _Secret(error=SigningKeyError("SecretUnavailable", f"Secret {name} could not be read; retrying"))
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
            logger.warning("Secret %s/%s not read: %r", namespace, name, error)
            return _Secret(error=SigningKeyError("SecretUnavailable", f"Secret {name} could not be read; retrying"))
        return _Secret(data=dict(secret.get("data") or {}))
