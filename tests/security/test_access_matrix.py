"""Every route of the app, called as every kind of caller: who gets through must be exactly who
the route's guard dependencies (app/deps.py GUARDS) let through. A route without a guard must be
listed in PUBLIC (tests/security/routes.py), so a new route that forgets its guard fails here."""

import pytest

from app.deps import PRINCIPALS, SessionDep
from app.main import create_app
from tests.security.conftest import FIGURES, Caller
from tests.security.routes import declared_rule, endpoints


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
