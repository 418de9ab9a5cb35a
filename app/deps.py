"""Request dependencies: the database session, who is calling, and CSRF. A route declares who
may call it through its parameter types (WebAdmin, ApiLabeler, ...)."""

import hmac
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from app.models import User, Worker
from app.security import session_fingerprint
from app.services.users import user_for_token
from app.services.workers import worker_for_token

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


async def get_session(request: Request) -> AsyncIterator[Session]:
    write = request.method not in SAFE_METHODS
    async with request.app.state.db.request_session(write) as session:
        yield session


# Closed as soon as the route has made its response, before that response goes out: a download
# or a background task (an export, run after the response is sent) then holds no database
# session, request slot or SQLite writer's turn.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


# --- Browser sessions -------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    id: int
    username: str
    role: str


class LoginRequired(Exception):
    """Raised for anonymous page requests; the app answers with a redirect to the login page."""


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


async def verify_csrf(request: Request) -> None:
    """Every state-changing browser request carries the session's token (form field or header)."""
    if request.method in SAFE_METHODS:
        return
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise HTTPException(
            403, "The form's security token is missing or stale. Reload the page and try again."
        )


def log_in(request: Request, user: User) -> None:
    """Start a fresh browser session for user: a new cookie and CSRF token, so a session made
    before (or planted by someone else) is worth nothing afterwards."""
    request.session.clear()
    request.session["uid"] = user.id
    request.session["pw"] = session_fingerprint(user.password_hash)


def _session_user(request: Request, session: SessionDep) -> User | None:
    user_id = request.session.get("uid")
    user = session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or not user.is_active:
        return None
    if request.session.get("pw") != session_fingerprint(user.password_hash):
        return None  # the password changed since this session logged in
    return user


def web_user(request: Request, session: SessionDep) -> User:
    user = _session_user(request, session)
    if user is None:
        request.session.pop("uid", None)
        raise LoginRequired()
    # A plain copy for page chrome: error pages render after the database session is gone.
    request.state.user = Viewer(user.id, user.username, user.role)
    return user


CANDIDATE_ONLY = (
    "A candidate's account can only take the screening test (at /screening) until an admin "
    "reviews it."
)


def _check_role(user: User, role: str, what: str) -> None:
    if user.role == role:
        return
    if user.role == "candidate":
        raise HTTPException(403, CANDIDATE_ONLY)
    raise HTTPException(403, f"This {what} is for {role}s.")


def _web_role(role: str):  # type: ignore[no-untyped-def]
    async def dependency(user: Annotated[User, Depends(web_user)]) -> User:
        _check_role(user, role, "page")
        return user

    return dependency


web_admin = _web_role("admin")
web_labeler = _web_role("labeler")
web_candidate = _web_role("candidate")

OptionalWebUser = Annotated[User | None, Depends(_session_user)]
WebUser = Annotated[User, Depends(web_user)]
WebAdmin = Annotated[User, Depends(web_admin)]
WebLabeler = Annotated[User, Depends(web_labeler)]
WebCandidate = Annotated[User, Depends(web_candidate)]


# --- API tokens ---------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="An API token created by an admin.")


def api_user(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    user = user_for_token(session, credentials.credentials) if credentials else None
    if user is None:
        raise HTTPException(
            401, "A valid API token is required.", headers={"WWW-Authenticate": "Bearer"}
        )
    return user


def _api_role(role: str):  # type: ignore[no-untyped-def]
    async def dependency(user: Annotated[User, Depends(api_user)]) -> User:
        _check_role(user, role, "endpoint")
        return user

    return dependency


api_admin = _api_role("admin")
api_labeler = _api_role("labeler")

ApiUser = Annotated[User, Depends(api_user)]
ApiAdmin = Annotated[User, Depends(api_admin)]
ApiLabeler = Annotated[User, Depends(api_labeler)]


def api_worker(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Worker:
    """A worker token; it opens the worker endpoints and nothing else (it is not a user's)."""
    worker = worker_for_token(session, credentials.credentials) if credentials else None
    if worker is None:
        raise HTTPException(
            401, "A valid worker token is required.", headers={"WWW-Authenticate": "Bearer"}
        )
    return worker


WorkerToken = Annotated[Worker, Depends(api_worker)]


def streaming_worker(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Worker:
    """A worker token checked in a short session of its own, for routes that stream a large
    body: no request session (and no SQLite writer turn) is held while the bytes arrive."""
    with request.app.state.db.session(write=False) as session:
        worker = worker_for_token(session, credentials.credentials) if credentials else None
    if worker is None:
        raise HTTPException(
            401, "A valid worker token is required.", headers={"WWW-Authenticate": "Bearer"}
        )
    return worker


StreamingWorkerToken = Annotated[Worker, Depends(streaming_worker)]


# --- Who passes each guard ------------------------------------------------------------------

# The callers the access-control matrix (tests/security/test_access_matrix.py) tries every
# route as; "held_out" is a labeler in the held-out group, who may do what any labeler does.
PRINCIPALS = ("anonymous", "candidate", "labeler", "held_out", "admin", "worker")
_USERS = frozenset({"candidate", "labeler", "held_out", "admin"})
_LABELERS = frozenset({"labeler", "held_out"})

# A route's rule is the intersection over the guards among its dependencies; a route with no
# guard must be listed as public in the matrix test.
GUARDS: dict[Callable[..., object], frozenset[str]] = {
    web_user: _USERS,
    web_admin: frozenset({"admin"}),
    web_labeler: _LABELERS,
    web_candidate: frozenset({"candidate"}),
    api_user: _USERS,
    api_admin: frozenset({"admin"}),
    api_labeler: _LABELERS,
    api_worker: frozenset({"worker"}),
    streaming_worker: frozenset({"worker"}),
}


async def _form(request: Request) -> FormData:
    return await request.form()


# The parsed form, for sync routes whose fields are dynamic (rank_<id>, pair_query...).
FormDep = Annotated[FormData, Depends(_form)]
