"""The identity API (Keystone v3 under /identity) over HTTP, against the suite's facade: version
discovery, tokens from Kubernetes bearer tokens with their scope, roles and catalog, validation,
the look-ups, and Keystone's errors."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hoststate.facade.identity.controllers.tokens import audit_id, bearer_token_expiry
from hoststate.facade.wsgi import MAX_REQUEST_BODY_SIZE
from tests.support.facade import RunningFacade, http

from .conftest import Users, World


def token_request(token: str, scope: Any = None) -> dict[str, Any]:
    """What keystoneauth's v3token plugin sends."""
    auth: dict[str, Any] = {"identity": {"methods": ["token"], "token": {"id": token}}}
    if scope is not None:
        auth["scope"] = scope
    return {"auth": auth}


def project_scope(name: str) -> dict[str, Any]:
    return {"project": {"name": name, "domain": {"name": "Default"}}}


def issue(facade: RunningFacade, token: str, scope: Any = None) -> Any:
    return http(f"{facade.url}/identity/v3/auth/tokens", "POST", body=token_request(token, scope))


def keystone_error(answer: Any, code: int, title: str) -> str:
    """The answer is Keystone's error body with `code`; its message."""
    assert answer.status == code, answer.body
    assert set(answer.body) == {"error"} and answer.body["error"]["code"] == code, answer.body
    assert answer.body["error"]["title"] == title
    return answer.body["error"]["message"]


# -- pure helpers -----------------------------------------------------------------------------
def jwt(claims: dict[str, Any]) -> str:
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJSUzI1NiJ9.{part}.c2ln"


def test_expiry_is_the_jwt_exp_claim_else_unknown() -> None:
    assert bearer_token_expiry(jwt({"exp": 2000000000})) == datetime.fromtimestamp(2000000000, UTC)
    for token in ("static-token", jwt({"sub": "x"}), jwt({"exp": "soon"}), "a.%%%.c", jwt({"exp": 10**20})):
        assert bearer_token_expiry(token) is None


def test_audit_id_is_stable_and_not_the_token() -> None:
    assert audit_id("abc") == audit_id("abc") != audit_id("abd")
    assert "abc" not in audit_id("abc") and len(audit_id("abc")) == 22


# -- version discovery --------------------------------------------------------------------------
def test_version_discovery_needs_no_token(facade: RunningFacade) -> None:
    root = http(f"{facade.url}/identity")
    assert root.status == 300
    (v3,) = root.body["versions"]["values"]
    assert v3["id"] == "v3.14" and v3["status"] == "stable"
    assert v3["links"] == [{"rel": "self", "href": f"{facade.url}/identity/v3/"}]
    for path in ("/identity/v3", "/identity/v3/"):
        answer = http(f"{facade.url}{path}")
        assert answer.status == 200 and answer.body["version"]["id"] == "v3.14"


# -- tokens -----------------------------------------------------------------------------------
def test_a_tenant_token_scoped_to_its_project(facade: RunningFacade, users: Users) -> None:
    answer = issue(facade, users.owner, project_scope(users.project))
    assert answer.status == 201
    assert answer.headers["X-Subject-Token"] == users.owner  # stateless: the bearer token itself
    token = answer.body["token"]
    assert token["methods"] == ["token"]
    assert token["user"]["id"] == f"system:serviceaccount:{users.project}:alice"
    assert token["user"]["domain"] == {"id": "default", "name": "Default"}
    assert token["project"] == {
        "id": users.project,
        "name": users.project,
        "domain": {"id": "default", "name": "Default"},
    }
    assert sorted(role["name"] for role in token["roles"]) == ["member", "reader"]
    # The suite's tokens are ServiceAccount JWTs requested for an hour: their exp is the expiry.
    expires = datetime.strptime(token["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert timedelta(minutes=50) < expires - datetime.now(UTC) <= timedelta(hours=1)
    assert expires == bearer_token_expiry(users.owner)
    services = {service["type"]: service for service in token["catalog"]}
    assert set(services) == {"compute", "identity"}
    compute = services["compute"]["endpoints"]
    assert sorted(e["interface"] for e in compute) == ["admin", "internal", "public"]
    assert {e["url"] for e in compute} == {f"{facade.url}/v2.1/{users.project}"}
    assert {e["url"] for e in services["identity"]["endpoints"]} == {f"{facade.url}/identity"}


def test_scope_by_project_id_and_the_default_scope(facade: RunningFacade, users: Users) -> None:
    by_id = issue(facade, users.owner, {"project": {"id": users.project}})
    assert by_id.status == 201 and by_id.body["token"]["project"]["id"] == users.project
    # No scope: the ServiceAccount's namespace is the user's default project, as Keystone's default_project_id.
    default = issue(facade, users.owner)
    assert default.status == 201 and default.body["token"]["project"]["id"] == users.project
    unscoped = issue(facade, users.owner, "unscoped").body["token"]
    assert "project" not in unscoped and "catalog" not in unscoped and "roles" not in unscoped


def test_the_admin_scoped_to_another_project_uses_its_catalog(
    facade: RunningFacade, users: Users, world: World
) -> None:
    """An admin (a ServiceAccount of the test's project) scoped to another project: the catalog's
    compute URL names that project, and the compute API takes it as the admin's project."""
    token = issue(facade, users.admin, project_scope(users.other_project)).body["token"]
    assert sorted(r["name"] for r in token["roles"]) == ["admin", "member", "reader", "service_manager"]
    compute = next(s for s in token["catalog"] if s["type"] == "compute")["endpoints"][0]["url"]
    assert compute == f"{facade.url}/v2.1/{users.other_project}"
    listed = http(f"{compute}/servers", token=users.admin)
    assert listed.status == 200 and listed.body["servers"] == []  # the other project has none
    everyone = http(f"{compute}/servers?all_tenants=1", token=users.admin).body["servers"]
    assert world.server_id in {s["id"] for s in everyone}


def test_refusals_are_keystones(facade: RunningFacade, users: Users) -> None:
    message = keystone_error(issue(facade, users.owner, project_scope(users.other_project)), 401, "Unauthorized")
    assert message == f"User system:serviceaccount:{users.project}:alice has no access to project {users.other_project}"
    refused = issue(facade, "not-a-token", project_scope(users.project))
    keystone_error(refused, 401, "Unauthorized")
    assert refused.headers["WWW-Authenticate"] == f'Keystone uri="{facade.url}/identity"'
    password = {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "u", "password": "p"}}}}}
    answer = http(f"{facade.url}/identity/v3/auth/tokens", "POST", body=password)
    assert keystone_error(answer, 401, "Unauthorized") == "Attempted to authenticate with an unsupported method."
    other_domain = {"project": {"name": users.project, "domain": {"name": "elsewhere"}}}
    assert keystone_error(issue(facade, users.owner, other_domain), 401, "Unauthorized").startswith(
        "Could not find domain"
    )
    keystone_error(issue(facade, users.owner, {"domain": {"id": "default"}}), 401, "Unauthorized")
    keystone_error(issue(facade, users.owner, {"system": {"all": True}}), 401, "Unauthorized")
    for body in ({}, {"auth": {}}, {"auth": {"identity": {"methods": "token"}}}, [], "x"):
        answer = http(f"{facade.url}/identity/v3/auth/tokens", "POST", body=body)
        keystone_error(answer, 400, "Bad Request")
    raw = http(f"{facade.url}/identity/v3/auth/tokens", "POST", raw=b"{", headers={"Content-Type": "application/json"})
    assert keystone_error(raw, 400, "Bad Request") == "Malformed request body"
    # The compute API's body reader, with Keystone's media type rule and body.
    xml = http(f"{facade.url}/identity/v3/auth/tokens", "POST", raw=b"<auth/>", headers={"Content-Type": "text/xml"})
    assert keystone_error(xml, 400, "Bad Request") == "Request must have a JSON body (Content-Type application/json)"
    huge = json.dumps({"auth": "a" * MAX_REQUEST_BODY_SIZE}).encode()
    keystone_error(http(f"{facade.url}/identity/v3/auth/tokens", "POST", raw=huge), 413, "Request Entity Too Large")


def test_validation(facade: RunningFacade, users: Users) -> None:
    url = f"{facade.url}/identity/v3/auth/tokens"
    answer = http(url, token=users.admin, headers={"X-Subject-Token": users.owner})
    assert answer.status == 200 and answer.headers["X-Subject-Token"] == users.owner
    token = answer.body["token"]
    assert token["user"]["id"] == f"system:serviceaccount:{users.project}:alice"
    assert token["project"]["id"] == users.project and "catalog" in token
    assert (
        "catalog"
        not in http(f"{url}?nocatalog", token=users.admin, headers={"X-Subject-Token": users.owner}).body["token"]
    )
    assert http(url, "HEAD", token=users.owner, headers={"X-Subject-Token": users.owner}).status == 200
    keystone_error(http(url, token=users.admin, headers={"X-Subject-Token": "made-up"}), 404, "Not Found")
    keystone_error(http(url, token=users.admin), 400, "Bad Request")
    keystone_error(http(url, headers={"X-Subject-Token": users.owner}), 401, "Unauthorized")


# -- look-ups ---------------------------------------------------------------------------------
def test_projects_are_the_namespaces_one_may_access(facade: RunningFacade, users: Users, world: World) -> None:
    v3 = f"{facade.url}/identity/v3"
    alice = f"system:serviceaccount:{users.project}:alice"
    for path in ("/projects", "/auth/projects", f"/users/{alice}/projects"):
        answer = http(f"{v3}{path}", token=users.owner)
        assert answer.status == 200, (path, answer.body)
        assert [p["id"] for p in answer.body["projects"]] == [users.project]
        assert answer.body["projects"][0]["domain_id"] == "default"
    assert [p["id"] for p in http(f"{v3}/projects", token=users.other).body["projects"]] == [users.other_project]
    admin_sees = {p["id"] for p in http(f"{v3}/projects", token=users.admin).body["projects"]}
    # The namespaces the facade knows (those holding Servers) and its own; other namespaces by name.
    assert users.project in admin_sees and users.other_project not in admin_sees
    assert [p["id"] for p in http(f"{v3}/projects?name={users.project}", token=users.owner).body["projects"]] == [
        users.project
    ]
    assert http(f"{v3}/projects?name={users.other_project}", token=users.owner).body["projects"] == []
    assert http(f"{v3}/projects?domain_id=other", token=users.owner).body["projects"] == []
    shown = http(f"{v3}/projects/{users.project}", token=users.owner)
    assert shown.status == 200 and shown.body["project"]["name"] == users.project
    forbidden = http(f"{v3}/projects/{users.other_project}", token=users.owner)
    assert keystone_error(forbidden, 403, "Forbidden") == (
        "You are not authorized to perform the requested action: identity:get_project."
    )
    assert http(f"{v3}/projects/{users.other_project}", token=users.admin).status == 200
    # A name no namespace can have is no one's project, the admin's neither (and costs no review).
    keystone_error(http(f"{v3}/projects/Not_A_Namespace", token=users.admin), 403, "Forbidden")
    assert http(f"{v3}/projects?name=Not_A_Namespace", token=users.admin).body["projects"] == []
    keystone_error(http(f"{v3}/users/someone-else/projects", token=users.owner), 403, "Forbidden")
    keystone_error(http(f"{v3}/projects", token="made-up"), 401, "Unauthorized")


def test_users_one_sees(facade: RunningFacade, users: Users, world: World) -> None:
    v3 = f"{facade.url}/identity/v3"
    alice = f"system:serviceaccount:{users.project}:alice"
    me = http(f"{v3}/users/{alice}", token=users.owner)
    assert me.status == 200 and me.body["user"]["name"] == alice and me.body["user"]["domain_id"] == "default"
    assert [u["id"] for u in http(f"{v3}/users?name={alice}", token=users.owner).body["users"]] == [alice]
    assert http(f"{v3}/users?name=alice", token=users.owner).body["users"] == []
    keystone_error(http(f"{v3}/users/alice", token=users.owner), 403, "Forbidden")
    keystone_error(http(f"{v3}/users", token=users.owner), 403, "Forbidden")
    # The admin sees any user: the Servers' userIds among them.
    assert http(f"{v3}/users/alice", token=users.admin).body["user"]["id"] == "alice"
    assert "alice" in {u["id"] for u in http(f"{v3}/users", token=users.admin).body["users"]}


def test_domains_and_unknown_routes(facade: RunningFacade, users: Users) -> None:
    v3 = f"{facade.url}/identity/v3"
    assert http(f"{v3}/domains/default", token=users.owner).body["domain"]["name"] == "Default"
    assert [d["id"] for d in http(f"{v3}/domains?name=Default", token=users.owner).body["domains"]] == ["default"]
    assert http(f"{v3}/domains?name=other", token=users.owner).body["domains"] == []
    assert keystone_error(http(f"{v3}/domains/other", token=users.owner), 404, "Not Found") == (
        "Could not find domain: other."
    )
    keystone_error(http(f"{v3}/credentials", token=users.owner), 404, "Not Found")
    keystone_error(http(f"{v3}/projects", "DELETE", token=users.owner), 405, "Method Not Allowed")
