"""The admin's pages: users, tokens, project guidelines and settings."""

import re

import pytest
from sqlalchemy import select

from app.models import ApiToken, Project, User
from tests.factories import login, make_project, make_user


def test_an_admin_creates_a_labeler(client, session) -> None:
    token = login(client, make_user(session, "admin"))
    response = client.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "username": "dana",
            "password": "long-enough-pw",
            "role": "labeler",
        },
    )
    assert "Created labeler dana." in response.text
    assert session.scalar(select(User).where(User.username == "dana")).role == "labeler"


def test_a_short_password_is_refused_with_a_message(client, session) -> None:
    token = login(client, make_user(session, "admin"))
    response = client.post(
        "/admin/users", data={"csrf_token": token, "username": "dana", "password": "short"}
    )
    assert response.status_code == 422 and "password" in response.text
    assert session.scalar(select(User).where(User.username == "dana")) is None


def test_an_admin_deactivates_a_labeler(client, session) -> None:
    labeler = make_user(session)
    token = login(client, make_user(session, "admin"))
    client.post(f"/admin/users/{labeler.id}/active", data={"csrf_token": token, "active": "false"})
    session.refresh(labeler)
    assert labeler.is_active is False


def test_an_admin_issues_a_token_shown_once_and_stored_hashed(client, session) -> None:
    labeler = make_user(session)
    token = login(client, make_user(session, "admin"))
    page = client.post(
        f"/admin/users/{labeler.id}/tokens", data={"csrf_token": token, "name": "script"}
    ).text
    stored = session.scalar(select(ApiToken))
    assert "rk_" in page and stored.token_hash not in page and "rk_" not in stored.token_hash


def test_an_admin_sets_guidelines_and_settings(client, session) -> None:
    project = make_project(session)
    token = login(client, make_user(session, "admin"))
    client.post(
        f"/admin/projects/{project.id}",
        data={
            "csrf_token": token,
            "name": "Renamed",
            "guidelines": "# Be *kind*",
            "k_min": "4",
            "k_max": "6",
            "lease_seconds": "900",
            "annotations_per_item": "3",
        },
    )
    session.refresh(project)
    assert (project.name, project.k_max, project.lease_seconds, project.annotations_per_item) == (
        "Renamed",
        6,
        900,
        3,
    )
    assert "<em>kind</em>" in client.get(f"/admin/projects/{project.id}").text


def test_invalid_settings_are_refused_and_change_nothing(client, session) -> None:
    project = make_project(session)
    token = login(client, make_user(session, "admin"))
    response = client.post(
        f"/admin/projects/{project.id}",
        data={
            "csrf_token": token,
            "name": "X",
            "k_min": "7",
            "k_max": "5",
            "lease_seconds": "900",
            "annotations_per_item": "1",
        },
    )
    assert response.status_code == 422 and "smallest K" in response.text
    session.refresh(project)
    assert (project.k_min, project.k_max) == (4, 9)


def test_html_in_guidelines_is_shown_escaped(client, session) -> None:
    project = make_project(session, guidelines="<script>alert(1)</script>")
    make_user(session)
    login(client, make_user(session, "admin"))
    page = client.get(f"/admin/projects/{project.id}").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page


def test_the_new_project_form_opens_with_the_default_settings(client, session) -> None:
    login(client, make_user(session, "admin"))
    response = client.get("/admin/projects/new")
    assert response.status_code == 200
    assert 'name="lease_seconds" type="number" min="60" value="1800"' in response.text


def test_an_admin_creates_a_project(client, session) -> None:
    token = login(client, make_user(session, "admin"))
    client.post(
        "/admin/projects",
        data={
            "csrf_token": token,
            "name": "New one",
            "guidelines": "",
            "k_min": "4",
            "k_max": "9",
            "lease_seconds": "1800",
            "annotations_per_item": "1",
        },
    )
    assert session.scalar(select(Project)).name == "New one"


def test_the_users_page_moves_a_labeler_to_the_held_out_group(client, session) -> None:
    labeler = make_user(session)
    token = login(client, make_user(session, "admin"))

    response = client.post(
        f"/admin/users/{labeler.id}/group",
        data={"labeler_group": "held_out", "csrf_token": token},
        follow_redirects=False,
    )

    assert response.status_code == 303
    session.refresh(labeler)
    assert labeler.labeler_group == "held_out"
    assert "Held-out" in client.get("/admin/users").text


def test_setting_a_group_needs_the_csrf_token(client, session) -> None:
    labeler = make_user(session)
    login(client, make_user(session, "admin"))
    response = client.post(f"/admin/users/{labeler.id}/group", data={"labeler_group": "held_out"})
    assert response.status_code == 403
    session.refresh(labeler)
    assert labeler.labeler_group == "training"


def test_a_labeler_cannot_set_groups(client, session) -> None:
    labeler = make_user(session)
    token = login(client, labeler)
    response = client.post(
        f"/admin/users/{labeler.id}/group", data={"labeler_group": "held_out", "csrf_token": token}
    )
    assert response.status_code == 403
    session.refresh(labeler)
    assert labeler.labeler_group == "training"


@pytest.mark.parametrize(
    ("field", "value"),
    [("gold_percent", "101"), ("min_task_ms", "-5"), ("min_task_median_percent", "150")],
)
def test_quality_settings_out_of_range_are_refused(client, session, field, value) -> None:
    project = make_project(session)
    token = login(client, make_user(session, "admin"))
    page = client.get(f"/admin/projects/{project.id}").text
    fields = dict(re.findall(r'<input name="(\w+)"[^>]*value="([^"]*)"', page))

    response = client.post(
        f"/admin/projects/{project.id}", data={**fields, field: value, "csrf_token": token}
    )

    assert response.status_code == 422
    assert field in response.text
    session.refresh(project)
    assert (project.gold_percent, project.min_task_ms, project.min_task_median_percent) == (0, 0, 0)


def test_split_ratios_that_do_not_add_up_to_one_are_refused(client, session) -> None:
    project = make_project(session)
    token = login(client, make_user(session, "admin"))
    response = client.post(
        f"/admin/projects/{project.id}",
        data={
            "csrf_token": token,
            "name": project.name,
            "split_train": "0.8",
            "split_validation": "0.2",
            "split_test": "0.2",
        },
    )
    assert response.status_code == 422 and "add up to 1 (they add up to 1.2)" in response.text
    session.refresh(project)
    assert project.split_validation == 0.1


def test_a_split_ratio_outside_zero_to_one_is_refused(client, session) -> None:
    project = make_project(session)
    token = login(client, make_user(session, "admin"))
    response = client.post(
        f"/admin/projects/{project.id}",
        data={"csrf_token": token, "name": project.name, "split_train": "1.5"},
    )
    assert response.status_code == 422 and "split_train" in response.text
