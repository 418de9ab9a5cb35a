"""The audit log as admins see it: the page with its filters and pages, the CSV download and the
API; the actions done through pages and the API are logged under the admin who did them."""

import csv
import html
import io
import re

import pytest
from sqlalchemy import select

from app.models import AuditEntry, User
from app.schemas.admin import UserIn
from app.services import users, workers
from tests.factories import PASSWORD, bearer, login, make_project, make_user


def entries(session) -> list[tuple[str, str, str | None]]:
    return [(e.actor_name, e.action, e.target) for e in session.scalars(select(AuditEntry))]


def test_a_user_created_on_the_users_page_is_logged_under_the_admin(client, session) -> None:
    admin = make_user(session, "admin", username="ann")
    token = login(client, admin)
    client.post(
        "/admin/users",
        data={"csrf_token": token, "username": "dana", "password": PASSWORD, "role": "labeler"},
    )
    dana = session.scalar(select(User).where(User.username == "dana"))
    assert ("ann", "user.created", f"user:{dana.id}") in entries(session)


def test_settings_saved_on_the_project_page_are_logged_with_what_changed(client, session) -> None:
    project = make_project(session, name="Poems")
    token = login(client, make_user(session, "admin", username="ann"))
    client.post(
        f"/admin/projects/{project.id}",
        data={"csrf_token": token, "name": "Poems", "guidelines": "Be kind."},
    )
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "project.updated"))
    assert (entry.actor_name, entry.before, entry.after) == (
        "ann",
        {"guidelines": ""},
        {"guidelines": "Be kind."},
    )


def test_a_worker_token_created_on_the_jobs_page_is_logged(client, session) -> None:
    token = login(client, make_user(session, "admin", username="ann"))
    client.post("/admin/workers", data={"csrf_token": token, "name": "gpu-1"})
    assert [e[:2] for e in entries(session) if e[1] == "worker.created"] == [
        ("ann", "worker.created")
    ]


def test_a_group_change_through_the_api_is_logged_under_the_tokens_admin(client, session) -> None:
    headers = bearer(session, make_user(session, "admin", username="ann"))
    labeler = make_user(session)
    client.put(
        f"/api/v1/users/{labeler.id}/group", json={"labeler_group": "held_out"}, headers=headers
    )
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "user.group_changed"))
    assert (entry.actor_name, entry.after) == ("ann", {"labeler_group": "held_out"})


def test_an_export_through_the_api_is_logged(client, session) -> None:
    headers = bearer(session, make_user(session, "admin", username="ann"))
    response = client.post("/api/v1/exports", json={}, headers=headers)
    snapshot_id = response.json()["id"]
    assert ("ann", "export.requested", f"snapshot:{snapshot_id}") in entries(session)


@pytest.fixture
def logged(session) -> User:
    """Ann, an admin, created two labelers and a worker token."""
    ann = make_user(session, "admin", username="ann")
    users.create_user(session, UserIn(username="dana", password=PASSWORD), ann)
    users.create_user(session, UserIn(username="eric", password=PASSWORD), ann)
    workers.create_worker(session, "gpu-1", ann)
    return ann


def test_the_page_shows_who_did_what_to_what(client, session, logged) -> None:
    login(client, logged)
    page = client.get("/admin/audit").text
    assert "worker token created" in page and "user created" in page
    assert "ann" in page and "user:" in page


def test_the_page_filters_by_action(client, session, logged) -> None:
    login(client, logged)
    page = client.get("/admin/audit", params={"action": "worker.created", "actor": ""}).text
    assert "worker token created</td>" in page and "user created</td>" not in page


def test_the_page_leads_to_older_entries_until_the_first(client, session, logged) -> None:
    login(client, logged)
    first = client.get("/admin/audit", params={"limit": 2}).text
    link = re.search(r'href="(/admin/audit\?[^"]+)" id="audit-older"', first)
    second = client.get(html.unescape(link.group(1))).text
    shown = [re.findall(r'<tr id="audit-(\d+)"', page) for page in (first, second)]
    assert len(shown[0]) == len(shown[1]) == 2 and not set(shown[0]) & set(shown[1])
    assert 'id="audit-older"' not in second


def test_a_window_that_ends_before_it_starts_is_refused_with_a_message(client, session) -> None:
    login(client, make_user(session, "admin"))
    response = client.get("/admin/audit", params={"since": "2026-03-02", "until": "2026-03-01"})
    assert response.status_code == 422
    assert "must not be after its end" in response.text


def test_the_csv_download_holds_the_filtered_entries(client, session, logged) -> None:
    login(client, logged)
    response = client.get("/admin/audit.csv", params={"actor": "ann"})
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert sorted(r["action"] for r in rows) == ["user.created", "user.created", "worker.created"]
    assert {r["actor_name"] for r in rows} == {"ann"}


def test_the_api_pages_through_the_log(client, session, logged) -> None:
    headers = bearer(session, logged)  # its token is logged too
    first = client.get("/api/v1/audit", params={"limit": 2}, headers=headers).json()
    second = client.get(
        "/api/v1/audit",
        params={"limit": 2, "before_id": first["next_before_id"], "actor": "ann"},
        headers=headers,
    ).json()
    assert [e["action"] for e in first["entries"]] == ["token.created", "worker.created"]
    assert [(e["actor_name"], e["action"]) for e in second["entries"]] == [
        ("ann", "user.created"),
        ("ann", "user.created"),
    ]
    assert second["next_before_id"] is None


@pytest.mark.parametrize("path", ["/admin/audit", "/admin/audit.csv"])
def test_labelers_cannot_see_the_log(client, session, logged, path) -> None:
    login(client, make_user(session))
    response = client.get(path)
    assert response.status_code == 403 and "dana" not in response.text


def test_labelers_cannot_read_the_log_through_the_api(client, session, logged) -> None:
    response = client.get("/api/v1/audit", headers=bearer(session, make_user(session)))
    assert response.status_code == 403 and "dana" not in response.text


def test_anonymous_visitors_are_sent_to_the_login_page(client) -> None:
    response = client.get("/admin/audit.csv", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
