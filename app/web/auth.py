"""Login, logout and changing one's password."""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from app.deps import FormDep, OptionalWebUser, SessionDep, WebUser, log_in, verify_csrf
from app.errors import InvalidInput, ServiceError, TooManyAttempts, validated
from app.schemas.admin import PasswordChangeIn
from app.services import users
from app.web.render import flash, render

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
        user = users.authenticate(
            session,
            username,
            password,
            settings.login_max_failures,
            settings.login_lockout_seconds,
        )
    except (InvalidInput, TooManyAttempts) as exc:
        context = {"error": exc.message, "username": username, "next": next}
        return render(request, "auth/login.html", context, status_code=exc.status_code)
    log_in(request, user)
    return RedirectResponse(_safe_next(next, _home_for(user.role)), status_code=303)


@router.get("/account/password")
def password_page(request: Request, _user: WebUser) -> Response:
    return render(request, "auth/password.html")


@router.post("/account/password")
def change_password(
    request: Request, session: SessionDep, user: WebUser, form: FormDep
) -> Response:
    fields = ("current_password", "new_password", "confirm_password")
    try:
        data = validated(PasswordChangeIn, {name: str(form.get(name, "")) for name in fields})
        users.change_password(session, user, data)
    except ServiceError as exc:
        return render(request, "auth/password.html", {"error": exc.message}, exc.status_code)
    log_in(request, user)  # this browser stays logged in; every other session ends
    flash(request, "Password changed. Other sessions of this account are logged out.")
    return RedirectResponse(_home_for(user.role), status_code=303)


@router.post("/logout")
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
