"""Every route of the app, called as every kind of caller: who gets through must be exactly who
the route's guard dependencies (app/deps.py GUARDS) let through. A route without a guard must be
listed in PUBLIC below, so a new route that forgets its guard fails here."""

import re
from collections.abc import Iterable
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from app.deps import GUARDS, PRINCIPALS, SessionDep
from app.main import create_app
from tests.security.conftest import FIGURES, Caller

EVERYONE = frozenset(PRINCIPALS)
# (method, path) of the routes anyone may call; "*" for every method of a path.
PUBLIC = {
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/healthz"),
    ("GET", "/api/v1/health"),
    ("*", "/openapi.json"),
    ("*", "/api/docs"),
    ("*", "/docs/oauth2-redirect"),
    ("*", "/static"),
}
UNKNOWN_ID = "987654"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    dependant: Dependant | None  # None for plain Starlette routes and mounts

    @property
    def url(self) -> str:
        """The path with an id no object has, so that no call changes existing data."""
        if self.path == "/static":
            return "/static/app.css"
        return re.sub(r"\{(\w+)(:\w+)?\}", UNKNOWN_ID, self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def endpoints(app: FastAPI) -> list[Endpoint]:
    """One Endpoint per method of every route in the app's table, included routers flattened
    (their prefixes and router-level dependencies applied); mounts answer GET."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        methods = ["GET"] if isinstance(route, Mount) else sorted(context.methods or [])
        dependant = getattr(context, "dependant", None)
        found += [Endpoint(m, context.path or "", dependant) for m in methods if m != "HEAD"]
    return found


def _calls(dependant: Dependant) -> Iterable[object]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def declared_rule(endpoint: Endpoint) -> frozenset[str] | None:
    """Who may call the endpoint: the intersection of its guards, everyone for a public one,
    None when it declares nothing."""
    if ("*", endpoint.path) in PUBLIC or (endpoint.method, endpoint.path) in PUBLIC:
        return EVERYONE
    if endpoint.dependant is None:
        return None
    guards = [GUARDS[call] for call in _calls(endpoint.dependant) if call in GUARDS]
    return frozenset.intersection(*guards) if guards else None


def got_through(response) -> bool:  # type: ignore[no-untyped-def]
    """False when a guard turned the caller away: 401, 403, or the login page for anonymous
    browser requests. Anything else (200, 404 for an unknown id, 422 for an empty form) means
    the request reached the route."""
    if response.status_code in (401, 403):
        return False
    location = response.headers.get("location", "")
    return not (response.status_code == 303 and location.startswith("/login?next="))


def test_every_route_declares_who_may_call_it(client) -> None:
    undeclared = [str(e) for e in endpoints(client.app) if declared_rule(e) is None]
    assert undeclared == [], "routes without a guard dependency and not listed as public"


def test_a_route_without_a_guard_has_no_rule() -> None:
    app = create_app()

    @app.post("/admin/forgotten")
    def forgotten(_session: SessionDep) -> None: ...

    [forgotten_endpoint] = [e for e in endpoints(app) if e.path == "/admin/forgotten"]
    assert declared_rule(forgotten_endpoint) is None


def test_every_route_lets_through_exactly_its_declared_callers(
    app_client, callers: dict[str, Caller], database_url: str
) -> None:
    violations, checks, table = [], 0, endpoints(app_client.app)
    for endpoint in table:
        allowed = declared_rule(endpoint)
        assert allowed is not None, f"{endpoint} declares no rule"
        for name in PRINCIPALS:
            response = callers[name].call(app_client, endpoint.method, endpoint.url)
            checks += 1
            if response.status_code >= 500 or got_through(response) != (name in allowed):
                violations.append(
                    f"{endpoint} as {name}: {response.status_code}, "
                    f"expected {'through' if name in allowed else 'turned away'}"
                )
    FIGURES.append(
        f"access matrix ({database_url.split(':')[0]}): {len(table)} endpoints x "
        f"{len(PRINCIPALS)} callers = {checks} checks, {len(violations)} violations"
    )
    assert violations == []


@pytest.mark.parametrize("name", ["candidate", "labeler", "held_out", "admin"])
def test_a_user_token_opens_no_worker_endpoint(client, callers, name) -> None:
    response = callers[name].call(client, "POST", "/api/v1/worker/claim", json={"kinds": ["sft"]})
    assert response.status_code == 401
    assert response.json()["detail"] == "A valid worker token is required."


def test_a_worker_token_opens_no_user_endpoint(client, callers) -> None:
    response = callers["worker"].call(client, "GET", "/api/v1/me")
    assert response.status_code == 401
    assert response.json()["detail"] == "A valid API token is required."
