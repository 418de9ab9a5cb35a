"""A labeler reaches only their own tasks and answers: another labeler's task id behaves exactly
like an id that does not exist (same status, same message), on the pages and in the API, and
nothing about the other labeler's work or statistics shows."""

import re

import pytest
from sqlalchemy import func, select

from app.models import Ranking
from app.services import queue, users
from tests.factories import (
    bearer,
    login,
    make_project,
    make_ranking_item,
    make_user,
    rank_task,
)

UNKNOWN = 987654


@pytest.fixture
def two_labelers(session):
    """Ann holds a leased ranking task; Bob has his own labeler account and a token."""
    project = make_project(session)
    make_ranking_item(session, project)
    make_ranking_item(session, project)
    ann, bob = make_user(session, username="ann"), make_user(session, username="bob")
    task = queue.next_task(session, project, ann, "ranking")
    return project, ann, bob, task


def same_answer(response, other, task_id: int) -> bool:  # type: ignore[no-untyped-def]
    """Two responses that differ only by the id asked for."""

    def text(r) -> str:  # type: ignore[no-untyped-def]
        return re.sub(r'name="csrf_token" value="[^"]+"', "", r.text).replace(str(task_id), "N")

    return response.status_code == other.status_code and text(response) == text(other).replace(
        str(UNKNOWN), "N"
    )


@pytest.mark.parametrize("action", ["", "/ranking", "/demonstration", "/skip"])
def test_another_labelers_task_looks_like_no_task_on_the_pages(
    client, session, two_labelers, action
) -> None:
    _project, _ann, bob, task = two_labelers
    token = login(client, bob)
    method = "GET" if not action else "POST"
    data = {"csrf_token": token, "reason": "other"} if action else None

    theirs = client.request(method, f"/labeler/tasks/{task.id}{action}", data=data)
    missing = client.request(method, f"/labeler/tasks/{UNKNOWN}{action}", data=data)

    assert theirs.status_code == 404
    assert same_answer(theirs, missing, task.id)


@pytest.mark.parametrize(
    ("method", "action", "body"),
    [
        ("GET", "", None),
        (
            "POST",
            "/ranking",
            {"judgements": [{"completion_id": i, "rank": i} for i in (1, 2, 3, 4)]},
        ),
        ("POST", "/demonstration", {"kind": "single", "answer": "Mine now."}),
        ("POST", "/skip", {"reason": "other"}),
    ],
)
def test_another_labelers_task_looks_like_no_task_in_the_api(
    client, session, two_labelers, method, action, body
) -> None:
    _project, _ann, bob, task = two_labelers
    headers = bearer(session, bob)

    theirs = client.request(method, f"/api/v1/tasks/{task.id}{action}", json=body, headers=headers)
    missing = client.request(method, f"/api/v1/tasks/{UNKNOWN}{action}", json=body, headers=headers)

    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["detail"].replace(str(task.id), "N") == missing.json()["detail"].replace(
        str(UNKNOWN), "N"
    )


def test_another_labelers_task_stays_theirs_after_the_attempts(
    client, session, two_labelers
) -> None:
    _project, ann, bob, task = two_labelers
    headers = bearer(session, bob)
    client.post(f"/api/v1/tasks/{task.id}/skip", json={"reason": "other"}, headers=headers)
    client.post(
        f"/api/v1/tasks/{task.id}/demonstration",
        json={"kind": "single", "answer": "x"},
        headers=headers,
    )
    session.refresh(task)
    assert (task.labeler_id, task.state) == (ann.id, "active")
    assert session.scalar(select(func.count()).select_from(Ranking)) == 0


def test_a_ranking_naming_completions_of_another_item_is_refused(
    client, session, two_labelers
) -> None:
    project, _ann, bob, ann_task = two_labelers
    headers = bearer(session, bob)
    own = client.post(
        f"/api/v1/projects/{project.id}/tasks/next", params={"kind": "ranking"}, headers=headers
    ).json()
    foreign = ann_task.completion_order or []
    judgements = [{"completion_id": cid, "rank": i + 1} for i, cid in enumerate(foreign)]

    response = client.post(
        f"/api/v1/tasks/{own['id']}/ranking", json={"judgements": judgements}, headers=headers
    )

    assert response.status_code == 422
    assert session.scalar(select(func.count()).select_from(Ranking)) == 0


def test_todays_counts_are_the_callers_own(client, session, two_labelers) -> None:
    _project, ann, bob, task = two_labelers
    rank_task(session, task, ann, [1, 2, 3, 4])
    counts = client.get("/api/v1/me/today", headers=bearer(session, bob)).json()
    assert set(counts.values()) == {0}


def test_the_labeler_home_shows_no_one_elses_work(client, session, two_labelers) -> None:
    _project, _ann, bob, task = two_labelers
    login(client, bob)
    page = client.get("/labeler").text
    assert not re.search(r"\bann\b", page) and f"/labeler/tasks/{task.id}" not in page


def test_a_token_of_another_user_cannot_be_revoked_through_the_wrong_user(
    client, session, two_labelers
) -> None:
    _project, ann, bob, _task = two_labelers
    token, _plaintext = users.create_token(session, ann, "ann's")
    admin = bearer(session, make_user(session, "admin"))

    response = client.delete(f"/api/v1/users/{bob.id}/tokens/{token.id}", headers=admin)

    assert response.status_code == 404
    session.refresh(token)
    assert token.revoked_at is None
