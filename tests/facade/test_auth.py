"""The authenticator's logic with in-process review answers (no API server): roles from distinct
RBAC rights, the project from what Kubernetes vouches for, and the cost of a flood of made-up
tokens bounded (tests/facade/test_roles.py runs the roles against the real API server)."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from hoststate.facade import auth
from hoststate.facade.auth import Authenticator, plausible_bearer_token
from hoststate.facade.faults import HTTPUnauthorized
from hoststate.facade.policy import PolicyEngine

KNOWN = "known-token"


class Reviews:
    """Answers TokenReview (KNOWN is a user who is not a ServiceAccount, any other token is unknown)
    and SubjectAccessReview (from `rights`); counts reviews and the most in flight at once."""

    def __init__(self, rights: set[tuple[str, str, str | None]] = frozenset()) -> None:
        self.rights = rights
        self.token_reviews = 0
        self.in_flight = 0
        self.most_in_flight = 0

    async def request(self, method: str, path: str, body: dict) -> dict:
        if body["kind"] == "TokenReview":
            self.token_reviews += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            await asyncio.sleep(0.001)
            self.in_flight -= 1
            if body["spec"]["token"] != KNOWN:
                return {"status": {"authenticated": False}}
            return {"status": {"authenticated": True, "user": {"username": "jane", "groups": ["oidc:staff"]}}}
        attributes = body["spec"]["resourceAttributes"]
        right = (attributes["verb"], attributes["resource"], attributes.get("namespace"))
        return {"status": {"allowed": right in self.rights}}


def authenticator(reviews: Reviews) -> Authenticator:
    return Authenticator(reviews, PolicyEngine())  # type: ignore[arg-type]


# -- the project: from the URL only with membership ------------------------------------------------
async def test_a_url_project_counts_only_where_kubernetes_says_the_user_is_a_member() -> None:
    member_of_p = Reviews({("get", "servers", "p"), ("list", "servers", "p")})
    facade = authenticator(member_of_p)

    member = await facade.context(KNOWN, "p")
    assert (member.project_id, member.roles, member.is_admin) == ("p", ("member", "reader"), False)

    outsider = await facade.context(KNOWN, "q")
    assert (outsider.project_id, outsider.roles, outsider.is_admin) == (None, (), False)

    no_url = await facade.context(KNOWN, None)
    assert (no_url.project_id, no_url.roles) == (None, ())
    assert member_of_p.token_reviews == 1  # cached


# -- roles: from distinct rights ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rights", "roles", "is_admin"),
    [
        ({("patch", "computeservices", None)}, ("service_manager",), False),
        (
            {("patch", "computeservices", None), ("list", "servers", None)},
            ("admin", "service_manager", "member", "reader"),
            True,
        ),
        ({("list", "servers", None)}, (), False),
        (set(), (), False),
    ],
    ids=["service-manager", "admin", "reader-everywhere-is-not-admin", "none"],
)
async def test_roles_come_from_distinct_rights(rights: set, roles: tuple[str, ...], is_admin: bool) -> None:
    ctx = await authenticator(Reviews(rights)).context(KNOWN, None)
    assert (ctx.roles, ctx.is_admin) == (roles, is_admin)


# -- a flood of made-up tokens ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "token",
    ["x" * (auth.MAX_TOKEN_LENGTH + 1), "has space", 'quote"d', "ünïcode", "a=b", "tab\there", "=leading"],
    ids=["too-long", "space", "quote", "non-ascii", "inner-equals", "tab", "leading-equals"],
)
async def test_a_token_that_cannot_be_a_bearer_token_costs_no_review(token: str) -> None:
    reviews = Reviews()
    assert not plausible_bearer_token(token)
    with pytest.raises(HTTPUnauthorized):
        await authenticator(reviews).authenticate(token)
    assert reviews.token_reviews == 0


def test_real_token_shapes_are_plausible() -> None:
    jwt = ".".join(secrets.token_urlsafe(n) for n in (36, 400, 342))
    for token in (jwt, "abcdef.0123456789abcdef", secrets.token_urlsafe(32), "YWxhZGRpbg+/==", "x" * 8192):
        assert plausible_bearer_token(token), token


async def test_unknown_tokens_are_reviewed_a_bounded_number_at_a_time_and_cannot_push_known_ones_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth, "MAX_REVIEWED_TOKENS", 100)
    reviews = Reviews()
    facade = authenticator(reviews)
    assert (await facade.authenticate(KNOWN)).username == "jane"

    async def attempt(token: str) -> None:
        with pytest.raises(HTTPUnauthorized):
            await facade.authenticate(token)

    flood = [secrets.token_urlsafe(32) for _ in range(1000)]
    await asyncio.gather(*(attempt(token) for token in flood))
    assert reviews.token_reviews == 1 + len(flood)
    assert reviews.most_in_flight == auth.MAX_CONCURRENT_TOKEN_REVIEWS
    assert len(facade._reviews) == 100  # the negative cache is bounded

    assert (await facade.authenticate(KNOWN)).username == "jane"
    assert reviews.token_reviews == 1 + len(flood)  # still known: no review
    await attempt(flood[-1])  # a recent unknown token is refused from the cache
    assert reviews.token_reviews == 1 + len(flood)
