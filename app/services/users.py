"""Accounts, logins and API tokens."""

from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound, TooManyAttempts
from app.models import ApiToken, LoginThrottle, User
from app.models.base import utcnow
from app.schemas.admin import PasswordChangeIn, UserIn, check_password
from app.security import hash_api_token, hash_password, new_api_token, verify_password
from app.services import audit

WRONG_LOGIN = "Wrong username or password."


def create_user(session: Session, data: UserIn, actor: User | None = None) -> User:
    user = User(username=data.username, password_hash=hash_password(data.password), role=data.role)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"The username {data.username!r} is taken.") from None
    audit.record(
        session, actor, "user.created", user, after={"username": user.username, "role": user.role}
    )
    session.commit()
    return user


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"There is no user {user_id}.")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.role, User.username)))


def set_active(session: Session, user_id: int, active: bool, acting_admin: User) -> User:
    user = get_user(session, user_id)
    if user.id == acting_admin.id and not active:
        raise InvalidInput("You cannot deactivate your own account.")
    if user.is_active != active:
        action = "user.activated" if active else "user.deactivated"
        before, after = {"is_active": user.is_active}, {"is_active": active}
        audit.record(session, acting_admin, action, user, before, after)
        user.is_active = active
        session.commit()
    return user


def authenticate(
    session: Session,
    username: str,
    password: str,
    max_failures: int,
    lockout_seconds: int,
    now: datetime | None = None,
) -> User:
    """The active user with these credentials; repeated failures lock the username for a while."""
    now = now or utcnow()
    username = username.strip()
    throttle = session.get(LoginThrottle, username)
    if throttle and throttle.locked_until and throttle.locked_until > now:
        wait = int((throttle.locked_until - now).total_seconds()) + 1
        raise TooManyAttempts(f"Too many failed logins. Try again in {wait} seconds.")
    user = session.scalar(select(User).where(User.username == username))
    ok = verify_password(user.password_hash if user else None, password)
    if ok and user is not None and user.is_active:
        if throttle:
            session.delete(throttle)
            session.commit()
        return user
    if throttle is None:
        throttle = LoginThrottle(username=username[:64], failures=0)
        session.add(throttle)
    throttle.failures += 1
    if throttle.failures >= max_failures:
        throttle.failures = 0
        throttle.locked_until = now + timedelta(seconds=lockout_seconds)
    session.commit()
    if ok and user is not None:
        raise InvalidInput("This account is deactivated.")
    raise InvalidInput(WRONG_LOGIN)


def change_password(session: Session, user: User, data: PasswordChangeIn) -> User:
    """Set a new password after checking the current one. Browser sessions carry a fingerprint
    of the password hash (app/deps.py), so every other session of this user ends here."""
    if not verify_password(user.password_hash, data.current_password):
        raise InvalidInput("The current password is wrong; the password was not changed.")
    try:
        check_password(data.new_password, user.username)
    except ValueError as exc:
        raise InvalidInput(f"New password: {exc}.") from None
    if verify_password(user.password_hash, data.new_password):
        raise InvalidInput("The new password is the current one; choose another.")
    user.password_hash = hash_password(data.new_password)
    session.commit()
    return user


def create_token(
    session: Session, user: User, name: str, actor: User | None = None
) -> tuple[ApiToken, str]:
    """A new API token for user; the plaintext is returned once and never stored."""
    plaintext = new_api_token()
    token = ApiToken(user_id=user.id, name=name, token_hash=hash_api_token(plaintext))
    session.add(token)
    audit.record(
        session, actor, "token.created", token, after={"user": user.username, "name": name}
    )
    session.commit()
    return token, plaintext


def list_tokens(session: Session, user_id: int) -> list[ApiToken]:
    return list(
        session.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id))
    )


def revoke_token(
    session: Session, token_id: int, owner_id: int, actor: User | None = None
) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != owner_id:
        raise NotFound(f"There is no token {token_id} for this user.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(session, actor, "token.revoked", token, after={"name": token.name})
        session.commit()
    return token


@cache
def _user_by_token_hash():  # type: ignore[no-untyped-def]
    """Built once: every API request runs it, and building it costs more than running it."""
    return (
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(
            ApiToken.token_hash == bindparam("token_hash"),
            ApiToken.revoked_at.is_(None),
            User.is_active.is_(True),
        )
    )


def user_for_token(session: Session, plaintext: str) -> User | None:
    """The active user behind an unrevoked token, or None."""
    return session.scalar(_user_by_token_hash(), {"token_hash": hash_api_token(plaintext)})
