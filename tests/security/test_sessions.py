"""Browser sessions, passwords, login throttling and the headers every response carries."""

import json
from base64 import b64decode, b64encode

import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import select

from app.models import User
from tests.conftest import TEST_SECRET
from tests.factories import PASSWORD, bearer, csrf_from, login, make_user
from tests.security.conftest import SESSION_COOKIE


def signed_session(data: dict, secret: str = TEST_SECRET, age_seconds: int = 0) -> str:
    """A session cookie as Starlette's SessionMiddleware writes it, signed age_seconds ago."""

    class Backdated(TimestampSigner):
        def get_timestamp(self) -> int:
            return super().get_timestamp() - age_seconds

    payload = b64encode(json.dumps(data).encode())
    return Backdated(secret).sign(payload).decode()


def logged_in_cookie(client, user) -> str:  # type: ignore[no-untyped-def]
    login(client, user)
    return client.cookies[SESSION_COOKIE]


def is_logged_in(client, cookie: str) -> bool:  # type: ignore[no-untyped-def]
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie)
    return client.get("/labeler", follow_redirects=False).status_code == 200


# --- Headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/api/v1/health", "/static/app.js", "/no-such-page"])
def test_every_response_carries_the_security_headers(client, path) -> None:
    headers = client.get(path).headers
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-frame-options"] == "DENY"


def test_the_policy_allows_no_inline_script(client) -> None:
    csp = client.get("/login").headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


# --- Sessions ---------------------------------------------------------------------------------


def test_login_replaces_the_session_cookie(client, session) -> None:
    user = make_user(session)
    client.get("/login")
    before = client.cookies[SESSION_COOKIE]
    after = logged_in_cookie(client, user)
    assert before != after
    assert not is_logged_in(client, before)


def test_the_csrf_token_from_before_login_is_refused_after_it(client, session) -> None:
    user = make_user(session)
    old_token = csrf_from(client.get("/login").text)
    login(client, user)
    response = client.post("/logout", data={"csrf_token": old_token})
    assert response.status_code == 403
    assert client.get("/labeler", follow_redirects=False).status_code == 200


def test_a_tampered_session_cookie_is_ignored(client, session) -> None:
    labeler, admin = make_user(session), make_user(session, "admin")
    payload, timestamp, signature = logged_in_cookie(client, labeler).split(".")
    data = json.loads(b64decode(payload))
    data["uid"] = admin.id
    forged = ".".join([b64encode(json.dumps(data).encode()).decode(), timestamp, signature])
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, forged)
    assert client.get("/admin", follow_redirects=False).headers["location"].startswith("/login")


def test_a_session_signed_with_another_key_is_ignored(client, session) -> None:
    user = make_user(session)
    forged = signed_session({"uid": user.id}, secret="someone-elses-key")
    assert not is_logged_in(client, forged)


def test_an_expired_session_is_ignored(client, session, settings) -> None:
    data = json.loads(b64decode(logged_in_cookie(client, make_user(session)).split(".")[0]))
    expired = signed_session(data, age_seconds=settings.session_max_age_seconds + 60)
    assert is_logged_in(client, signed_session(data))
    assert not is_logged_in(client, expired)


def test_a_deactivated_users_session_ends(client, session) -> None:
    user = make_user(session)
    cookie = logged_in_cookie(client, user)
    user.is_active = False
    session.commit()
    assert not is_logged_in(client, cookie)


# --- Passwords --------------------------------------------------------------------------------


def change_password(client, token: str, current: str, new: str, confirm: str | None = None):  # type: ignore[no-untyped-def]
    return client.post(
        "/account/password",
        data={
            "csrf_token": token,
            "current_password": current,
            "new_password": new,
            "confirm_password": new if confirm is None else confirm,
        },
        follow_redirects=False,
    )


def test_changing_the_password_ends_the_other_sessions(client, session) -> None:
    user = make_user(session)
    other_browser = logged_in_cookie(client, user)
    client.cookies.clear()
    token = login(client, user)

    response = change_password(client, token, PASSWORD, "a-new-long-secret")

    assert response.status_code == 303
    this_browser = client.cookies[SESSION_COOKIE]
    assert is_logged_in(client, this_browser)
    assert not is_logged_in(client, other_browser)


def test_the_new_password_logs_in_and_the_old_one_does_not(client, session) -> None:
    user = make_user(session)
    change_password(client, login(client, user), PASSWORD, "a-new-long-secret")
    client.cookies.clear()
    token = csrf_from(client.get("/login").text)
    old = client.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert old.status_code == 422


def test_a_wrong_current_password_changes_nothing(client, session) -> None:
    user = make_user(session)
    before = user.password_hash
    response = change_password(client, login(client, user), "not-my-password", "a-new-secret")
    assert response.status_code == 422
    assert "current password is wrong" in response.text
    session.refresh(user)
    assert user.password_hash == before


@pytest.mark.parametrize(
    ("password", "says"),
    [
        ("short", "8 to 256 characters"),
        ("x" * 257, "8 to 256 characters"),
        ("abababababab", "4 different characters"),
        ("password123", "most used"),
        ("my-the-labeler-pw", "must not contain the username"),
        ("tab\there-and-there", "control characters"),
    ],
)
def test_a_new_password_must_follow_the_rules(client, session, password, says) -> None:
    user = make_user(session, username="the-labeler")
    response = change_password(client, login(client, user), PASSWORD, password)
    assert response.status_code == 422
    assert says in response.text


def test_the_confirmation_must_match(client, session) -> None:
    user = make_user(session)
    response = change_password(client, login(client, user), PASSWORD, "a-new-secret", "other-one")
    assert "confirmation differ" in response.text


@pytest.mark.parametrize(
    ("password", "says"),
    [("password1", "most used"), ("dana-secret-1", "must not contain the username")],
)
def test_a_new_account_follows_the_password_rules(client, session, password, says) -> None:
    token = login(client, make_user(session, "admin"))
    response = client.post(
        "/admin/users",
        data={"csrf_token": token, "username": "dana", "password": password, "role": "labeler"},
    )
    assert response.status_code == 422 and says in response.text
    assert session.scalar(select(User).where(User.username == "dana")) is None


def test_the_api_refuses_a_weak_password_with_a_message(client, session) -> None:
    headers = bearer(session, make_user(session, "admin"))
    response = client.post(
        "/api/v1/users", json={"username": "dana", "password": "12345678"}, headers=headers
    )
    assert response.status_code == 422
    assert "most used" in str(response.json()["detail"])


# --- Login throttling --------------------------------------------------------------------------


def post_login(client, username: str, password: str):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get("/login").text)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        follow_redirects=False,
    )


def test_unknown_usernames_are_throttled_like_known_ones(client, settings) -> None:
    for _ in range(settings.login_max_failures):
        assert post_login(client, "nobody-here", "guess-guess").status_code == 422
    assert post_login(client, "nobody-here", "guess-guess").status_code == 429


def test_a_locked_username_refuses_even_the_right_password(client, session, settings) -> None:
    user = make_user(session)
    for _ in range(settings.login_max_failures):
        post_login(client, user.username, "wrong-password")
    response = post_login(client, user.username, PASSWORD)
    assert response.status_code == 429
    assert SESSION_COOKIE not in client.cookies or not is_logged_in(
        client, client.cookies[SESSION_COOKIE]
    )


def test_failures_below_the_limit_do_not_lock(client, session, settings) -> None:
    user = make_user(session)
    for _ in range(settings.login_max_failures - 1):
        post_login(client, user.username, "wrong-password")
    assert post_login(client, user.username, PASSWORD).status_code == 303
