"""An in-memory KubeClient, for in-process tests of the operator's logic.

Its one `request` keeps objects as the API server would (uid, resourceVersion from one
counter, generation bumped by spec changes, generateName), applies merge patches (RFC 7386)
with the status subresource kept apart and a resourceVersion in the patch as a precondition
(409), records every request, and fails the requests a test asks it to. No watches: tests feed
the operator's handlers directly. For the integration, the tests against the API server stay.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hoststate.kube import ApiError, KubeClient, Resource
from hoststate.kube.client import MERGE_PATCH

ObjectKey = tuple[str, str, str | None, str]  # (API prefix, plural, namespace, name)


@dataclass(frozen=True, slots=True)
class Call:
    """One request as the client made it."""

    method: str
    path: str
    body: Any = None
    params: Mapping[str, str] | None = None
    content_type: str | None = None
    token: str | None = None  # set on requests made through as_token_holder()


@dataclass
class _Failure:
    status: int
    method: str | None
    path: str | None
    times: int  # how many more matching requests fail; -1: every one

    def matches(self, call: Call) -> bool:
        return (self.method is None or self.method == call.method) and (self.path is None or self.path == call.path)


@dataclass(frozen=True, slots=True)
class _Path:
    prefix: str  # /apis/{group}/{version} or /api/{version}
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None

    @classmethod
    def parse(cls, path: str) -> _Path:
        parts = path.strip("/").split("/")
        size = 3 if parts[0] == "apis" else 2
        prefix, rest = "/" + "/".join(parts[:size]), parts[size:]
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        rest += [None] * (3 - len(rest))
        return cls(prefix, rest[0], namespace, rest[1], rest[2])

    @property
    def key(self) -> ObjectKey:
        assert self.name is not None
        return (self.prefix, self.plural, self.namespace, self.name)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


class FakeKube(KubeClient):
    """A KubeClient whose requests are answered from a dict of objects: get, list, create, patch
    and delete are KubeClient's own, over this `request`; as_token_holder shares the objects."""

    def __init__(self) -> None:  # no credentials, no session
        self.objects: dict[ObjectKey, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self._failures: list[_Failure] = []
        self._revisions = itertools.count(1)
        self._names = itertools.count(1)
        self._token: str | None = None

    # -- what a test arranges and inspects -----------------------------------------------
    def add(self, resource: Resource, body: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Store an object as if created (without recording a call); return what the API server would."""
        return self._create(_Path.parse(resource.path(namespace)), body)

    def object(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.objects.get(_Path.parse(resource.path(namespace, name)).key)

    def modify(
        self, resource: Resource, name: str, patch: Any, namespace: str | None = None, *, subresource: str | None = None
    ) -> dict[str, Any]:
        """Apply a merge patch as another writer would (without recording a call); return the object."""
        path = resource.path(namespace, name, subresource)
        return self._patch(_Path.parse(path), patch, "PATCH", path)

    def fail(self, status: int, *, method: str | None = None, path: str | None = None, times: int = 1) -> None:
        """The next `times` requests matching `method` and `path` (exact; None: any) fail with
        `status` (times=-1: all of them, until clear_failures)."""
        self._failures.append(_Failure(status, method, path, times))

    def clear_failures(self) -> None:
        self._failures.clear()

    def requests(
        self, method: str | None = None, *, path_prefix: str = "", where: Callable[[Call], bool] | None = None
    ) -> list[Call]:
        """The recorded calls with this method, under this path, and matching `where`."""
        return [
            call
            for call in self.calls
            if (method is None or call.method == method)
            and call.path.startswith(path_prefix)
            and (where is None or where(call))
        ]

    # -- KubeClient ----------------------------------------------------------------------------
    def as_token_holder(self, token: str) -> FakeKube:
        """A view on the same objects whose calls record `token`."""
        view = copy.copy(self)
        view._token = token
        return view

    async def close(self) -> None:
        return None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str | None = None,
        timeout: float | None = 30,
    ) -> dict[str, Any]:
        call = Call(method, path, copy.deepcopy(body), dict(params) if params else None, content_type, self._token)
        self.calls.append(call)
        for failure in self._failures:
            if failure.times != 0 and failure.matches(call):
                if failure.times > 0:
                    failure.times -= 1
                raise ApiError(failure.status, {"reason": "Injected", "message": "injected by FakeKube"}, method, path)
        target = _Path.parse(path)
        if method == "GET" and target.name is None:
            return self._list(target)
        if method == "POST":
            return self._create(target, body)
        if method == "GET":
            return copy.deepcopy(self._existing(target, method, path))
        if method == "PATCH":
            if content_type not in (None, MERGE_PATCH):
                raise NotImplementedError(f"FakeKube applies merge patches only, not {content_type}")
            return self._patch(target, body, method, path)
        if method == "DELETE":
            self._existing(target, method, path)
            return self.objects.pop(target.key)
        raise NotImplementedError(f"FakeKube: {method} {path}")

    # -- the store ------------------------------------------------------------------------------
    def _existing(self, target: _Path, method: str, path: str) -> dict[str, Any]:
        obj = self.objects.get(target.key)
        if obj is None:
            raise ApiError(404, {"reason": "NotFound", "message": f"{target.name} not found"}, method, path)
        return obj

    def _list(self, target: _Path) -> dict[str, Any]:
        items = [
            copy.deepcopy(obj)
            for (prefix, plural, namespace, _), obj in sorted(self.objects.items(), key=lambda kv: str(kv[0]))
            if (prefix, plural) == (target.prefix, target.plural)
            and (target.namespace is None or namespace == target.namespace)
        ]
        return {"metadata": {"resourceVersion": str(next(self._revisions))}, "items": items}

    def _create(self, target: _Path, body: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if "name" not in meta:
            meta["name"] = f"{meta.get('generateName', '')}{next(self._names):05d}"
        if target.namespace is not None:
            meta["namespace"] = target.namespace
        key = _Path(target.prefix, target.plural, target.namespace, meta["name"], None).key
        if key in self.objects:
            raise ApiError(
                409,
                {"reason": "AlreadyExists", "message": f"{meta['name']} exists"},
                "POST",
                f"{target.prefix}/{target.plural}",
            )
        meta.update(uid=str(uuid.uuid4()), resourceVersion=str(next(self._revisions)), generation=1)
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        self.objects[key] = obj
        return copy.deepcopy(obj)

    def _patch(self, target: _Path, patch: dict[str, Any], method: str, path: str) -> dict[str, Any]:
        # A copy: merge_patch shares what the patch leaves alone, and the stored object must not change.
        current = copy.deepcopy(self._existing(target, method, path))
        patch = copy.deepcopy(patch)
        expected = (patch.get("metadata") or {}).pop("resourceVersion", None)
        if expected is not None and expected != current["metadata"]["resourceVersion"]:
            raise ApiError(409, {"reason": "Conflict", "message": "the object has been modified"}, method, path)
        # The status subresource changes status only; the main resource everything but status.
        if target.subresource == "status":
            patch = {"status": patch.get("status")} if "status" in patch else {}
        else:
            patch.pop("status", None)
        updated = merge_patch(current, patch)
        if updated.get("spec") != current.get("spec"):
            updated["metadata"]["generation"] = current["metadata"]["generation"] + 1
        updated["metadata"]["resourceVersion"] = str(next(self._revisions))
        self.objects[target.key] = updated
        return copy.deepcopy(updated)
