"""Microversions, as Nova's api_version_request.py and wsgi.Request.set_api_version_request do them.

MAX_VERSION is the highest microversion at which every route the facade serves behaves
as Nova's does (docs/facade.md lists what changes up to it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import total_ordering
from typing import Generic, TypeVar

from .faults import HTTPBadRequest, HTTPNotAcceptable

MIN_VERSION = "2.1"
MAX_VERSION = "2.96"
DEFAULT_VERSION = MIN_VERSION

STANDARD_HEADER = "OpenStack-API-Version"
LEGACY_HEADER = "X-OpenStack-Nova-API-Version"
SERVICE_TYPE = "compute"

_VERSION_RE = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


@total_ordering
@dataclass(frozen=True, slots=True)
class APIVersion:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> APIVersion:
        match = _VERSION_RE.match(text)
        if not match:
            raise HTTPBadRequest(
                f"API Version String {text} is of invalid format. Must be of format MajorNum.MinorNum."
            )
        return cls(int(match.group(1)), int(match.group(2)))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, APIVersion):
            return NotImplemented
        return (self.major, self.minor) < (other.major, other.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def at_least(self, text: str) -> bool:
        return self >= APIVersion.parse(text)


MIN = APIVersion.parse(MIN_VERSION)
MAX = APIVersion.parse(MAX_VERSION)

T = TypeVar("T")


class PerVersion(Generic[T]):
    """Values that each hold from a microversion until the next one's (Nova's schemas by
    @validation.schema range): calling it with a version gives the value in force there."""

    def __init__(self, since: Mapping[str, T]) -> None:
        pairs = [(APIVersion.parse(v), value) for v, value in since.items()]
        self._newest_first = sorted(pairs, key=lambda pair: pair[0], reverse=True)
        if self._newest_first[-1][0] != MIN:
            raise ValueError(f"no value from {MIN_VERSION}")

    def __call__(self, version: APIVersion) -> T:
        return next(value for since, value in self._newest_first if version >= since)


def _standard_header_version(values: list[str]) -> str | None:
    """`OpenStack-API-Version: compute 2.53` (microversion_parse: comma-separated "service version" pairs)."""
    for value in ",".join(values).split(","):
        parts = value.strip().split(None, 1)
        if len(parts) == 2 and parts[0].lower() == SERVICE_TYPE:
            return parts[1].strip()
    return None


def requested_version(headers: Mapping[str, str] | object) -> APIVersion:
    """The request's microversion: the standard header wins over the legacy one; none means 2.1.

    400 for a malformed version, 406 for one outside [MIN, MAX], as Nova.
    """
    getall = getattr(headers, "getall", None)
    standard = getall(STANDARD_HEADER, []) if getall else [headers.get(STANDARD_HEADER)]  # type: ignore[union-attr]
    text = _standard_header_version([v for v in standard if v])
    if text is None:
        legacy = headers.get(LEGACY_HEADER)  # type: ignore[union-attr]
        text = legacy.strip() if legacy else None
    if text is None:
        return APIVersion.parse(DEFAULT_VERSION)
    if text == "latest":
        return MAX
    version = APIVersion.parse(text)
    if not MIN <= version <= MAX:
        raise HTTPNotAcceptable(
            f"Version {version} is not supported by the API. Minimum is {MIN} and maximum is {MAX}."
        )
    return version


def response_headers(version: APIVersion) -> dict[str, str]:
    return {STANDARD_HEADER: f"{SERVICE_TYPE} {version}", LEGACY_HEADER: str(version)}


VARY = f"{STANDARD_HEADER}, {LEGACY_HEADER}"
