"""Login and logout."""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from app.deps import OptionalWebUser, SessionDep, verify_csrf
from app.errors import InvalidInput, TooManyAttempts
from app.services.users import authenticate
from app.web.render import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])


def _home_for(role: str) -> str:
    return {"admin": "/admin", "candidate": "/screening"}.get(role, "/labeler")


def _safe_next(target: str | None, fallback: str) -> str:
    """Only same-site paths, so the login form cannot be used as an open redirect."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return fallback


@router.get("/")
def index(user: OptionalWebUser) -> Response:
    return RedirectResponse(_home_for(user.role) if user else "/login", status_code=303)


@router.get("/login")
def login_page(request: Request, user: OptionalWebUser, next: str | None = None) -> Response:
    if user:
        return RedirectResponse(_safe_next(next, _home_for(user.role)), status_code=303)
    return render(request, "auth/login.html", {"next": next or ""})


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    settings = request.app.state.settings
    try:
        user = authenticate(
            session,
            username,
            password,
            settings.login_max_failures,
            settings.login_lockout_seconds,
        )
    except (InvalidInput, TooManyAttempts) as exc:
        context = {"error": exc.message, "username": username, "next": next}
        return render(request, "auth/login.html", context, status_code=exc.status_code)
    # A fresh session (and CSRF token) on login, so a planted session id is worth nothing.
    request.session.clear()
    request.session["uid"] = user.id
    return RedirectResponse(_safe_next(next, _home_for(user.role)), status_code=303)


@router.post("/logout")
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
