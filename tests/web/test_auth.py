"""Logging in and out, session cookies, CSRF and login throttling."""

from tests.factories import PASSWORD, csrf_from, login, make_user


def post_login(client, username: str, password: str):
    token = csrf_from(client.get("/login").text)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        follow_redirects=False,
    )


def test_a_labeler_logs_in_and_lands_on_their_home(client, session) -> None:
    user = make_user(session)
    response = post_login(client, user.username, PASSWORD)
    assert response.headers["location"] == "/labeler"
    assert "Waiting for you" in client.get("/labeler").text


def test_an_admin_lands_on_the_dashboard(client, session) -> None:
    admin = make_user(session, "admin")
    assert post_login(client, admin.username, PASSWORD).headers["location"] == "/admin"


def test_the_session_cookie_is_signed_httponly_and_samesite(client, session) -> None:
    user = make_user(session)
    cookie = post_login(client, user.username, PASSWORD).headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_a_wrong_password_shows_a_clear_error(client, session) -> None:
    user = make_user(session)
    response = post_login(client, user.username, "wrong-password")
    assert response.status_code == 422
    assert "Wrong username or password." in response.text


def test_passwords_are_stored_as_argon2_hashes(session) -> None:
    user = make_user(session)
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash


def test_repeated_failures_lock_the_username_for_a_while(client, session) -> None:
    user = make_user(session)
    for _ in range(5):
        post_login(client, user.username, "wrong-password")
    response = post_login(client, user.username, PASSWORD)
    assert response.status_code == 429
    assert "Too many failed logins" in response.text


def test_a_deactivated_user_cannot_log_in(client, session) -> None:
    user = make_user(session)
    user.is_active = False
    session.commit()
    assert "deactivated" in post_login(client, user.username, PASSWORD).text


def test_a_form_without_the_csrf_token_is_refused(client, session) -> None:
    user = make_user(session)
    response = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert response.status_code == 403
    assert "security token" in response.text


def test_logging_in_starts_a_new_session_with_a_new_csrf_token(client, session) -> None:
    user = make_user(session)
    before = csrf_from(client.get("/login").text)
    after = login(client, user)
    assert before != after


def test_anonymous_pages_redirect_to_login(client) -> None:
    response = client.get("/labeler", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/labeler"


def test_login_does_not_redirect_off_site(client, session) -> None:
    user = make_user(session)
    token = csrf_from(client.get("/login").text)
    response = client.post(
        "/login",
        data={
            "username": user.username,
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/labeler"


def test_pages_carry_security_headers(client) -> None:
    headers = client.get("/login").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


def test_logout_ends_the_session(client, session) -> None:
    token = login(client, make_user(session))
    client.post("/logout", data={"csrf_token": token})
    assert client.get("/labeler", follow_redirects=False).status_code == 303
