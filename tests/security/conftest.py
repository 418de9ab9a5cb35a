"""Callers for the security tests: one of each principal the app knows, logged in through the
real login form (browser session and CSRF token) and holding an API or worker token."""

from dataclasses import dataclass, field

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.deps import CSRF_HEADER, SAFE_METHODS
from app.services import groups
from tests.factories import bearer, csrf_from, login, make_user, make_worker

SESSION_COOKIE = "rankery_session"
# Lines for the end of the pytest run: the figures the security tests measured.
FIGURES: list[str] = []


@dataclass
class Caller:
    """Who calls: a browser session (cookie and its CSRF token) and an Authorization header."""

    name: str
    cookie: str | None = None
    csrf: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def call(self, client: TestClient, method: str, url: str, **kwargs: object) -> httpx.Response:
        """One request as this caller; the client's cookie jar holds only this caller's."""
        client.cookies.clear()
        if self.cookie:
            client.cookies.set(SESSION_COOKIE, self.cookie)
        headers = {**self.headers, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        if method.upper() not in SAFE_METHODS and self.csrf:
            headers.setdefault(CSRF_HEADER, self.csrf)
        return client.request(method, url, headers=headers, follow_redirects=False, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def app_client(client: TestClient) -> TestClient:
    """The test's client, but a server error comes back as a 500 response instead of raising,
    so a sweep over many routes reports every failure."""
    quiet = TestClient(client.app, base_url=str(client.base_url), raise_server_exceptions=False)
    quiet.event_hooks["response"] = client.event_hooks["response"]
    return quiet


def _session_of(client: TestClient, name: str, csrf: str, headers: dict[str, str]) -> Caller:
    caller = Caller(name, client.cookies.get(SESSION_COOKIE), csrf, headers)
    client.cookies.clear()
    return caller


@pytest.fixture
def callers(client: TestClient, session: Session) -> dict[str, Caller]:
    """anonymous, candidate, labeler, held_out (a labeler in the held-out group), admin, worker."""
    client.cookies.clear()
    anonymous_csrf = csrf_from(client.get("/login").text)
    result = {"anonymous": _session_of(client, "anonymous", anonymous_csrf, {})}
    for name, role in [
        ("candidate", "candidate"),
        ("labeler", "labeler"),
        ("held_out", "labeler"),
        ("admin", "admin"),
    ]:
        user = make_user(session, role, username=f"the-{name.replace('_', '-')}")
        if name == "held_out":
            groups.set_group(session, user.id, "held_out")
        csrf = login(client, user)
        result[name] = _session_of(client, name, csrf, bearer(session, user))
    _worker, headers = make_worker(session)
    # A worker has no account; in a browser it is as anonymous as anyone.
    anonymous = result["anonymous"]
    result["worker"] = Caller("worker", anonymous.cookie, anonymous.csrf, headers)
    return result


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("security figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
