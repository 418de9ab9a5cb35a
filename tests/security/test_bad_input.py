"""Hostile and broken input: markup in every text a person types, control characters, invalid
UTF-8, SQL-looking strings, oversized bodies and fields, ids beyond the database's integers,
repeated and out-of-order submissions, forged CSRF tokens and replayed worker leases. Each gets
a clear refusal (or is stored as the plain text it is) and changes nothing else."""

import pytest
from sqlalchemy import func, select

from app.models import Prompt, Ranking
from app.schemas.labeling import MAX_TEXT_CHARS
from app.schemas.snapshot import ExportRequest
from app.services import exports, queue, users, workers
from tests.factories import (
    bearer,
    csrf_from,
    login,
    make_base_version,
    make_demonstration,
    make_job,
    make_project,
    make_prompt,
    make_ranking_item,
    make_snapshot_dir,
    make_user,
    make_worker,
)

SCRIPT = '<script>alert("x")</script>'
ATTRIBUTE = '"><img src=x onerror=alert(1)>'
PAYLOAD = f"{SCRIPT} {ATTRIBUTE}"


def count(session, model) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(model))


def assert_escaped(html: str) -> None:
    assert SCRIPT not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html


# --- Markup in every text field ------------------------------------------------------------------


@pytest.fixture
def marked_up(session, tmp_path):
    """A project, prompt, completions, demonstration, token and worker, each named or written
    with markup."""
    project = make_project(session, name=f"P {PAYLOAD}"[:100], guidelines=PAYLOAD)
    author, labeler = make_user(session), make_user(session)
    prompt = make_prompt(session, project, author, instruction=f"Say {PAYLOAD}")
    make_ranking_item(session, project, prompt=prompt)
    make_demonstration(session, project, make_user(session), answer=f"Answer {PAYLOAD}")
    users.create_token(session, labeler, f"token {PAYLOAD}"[:100])
    workers.create_worker(session, f"worker {PAYLOAD}"[:100])
    return project, labeler


def test_markup_shows_escaped_on_the_admin_pages(client, session, marked_up) -> None:
    project, _labeler = marked_up
    login(client, make_user(session, "admin"))
    for path in [
        "/admin",
        f"/admin/projects/{project.id}",
        "/admin/users",
        "/admin/jobs",
        f"/admin/projects/{project.id}/hygiene",
        f"/admin/projects/{project.id}/quality",
        f"/admin/projects/{project.id}/screening",
    ]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert SCRIPT not in response.text and "<img src=x" not in response.text, path
    assert_escaped(client.get("/admin/users").text)


def test_markup_shows_escaped_on_the_labelers_task_pages(client, session, marked_up) -> None:
    project, labeler = marked_up
    login(client, labeler)
    assert_escaped(client.get("/labeler").text)
    for kind in ("ranking", "demonstration"):
        task = queue.next_task(session, project, labeler, kind)
        if task is not None:
            assert_escaped(client.get(f"/labeler/tasks/{task.id}").text)


def test_the_dataset_card_carries_names_as_plain_text(
    client, session, db, settings, marked_up
) -> None:
    admin = make_user(session, "admin")
    snapshot = exports.request_snapshot(session, settings, ExportRequest(), admin, None)
    snapshot = exports.run_snapshot(db, settings, snapshot.id)
    card = exports.read_text(settings, snapshot, "README.md")

    assert card is not None and "&lt;script&gt;" in card
    assert "<script" not in card and "<img" not in card
    login(client, admin)
    assert_escaped(client.get(f"/admin/exports/{snapshot.id}").text)


# --- Text that is not text -----------------------------------------------------------------------


@pytest.mark.parametrize("character", ["\x00", "\x07", "\x1b", "\x7f"])
def test_control_characters_in_a_prompt_are_refused(client, session, character) -> None:
    project = make_project(session)
    body = {"kind": "plain", "category": "other", "instruction": f"Hello{character}there"}

    response = client.post(
        f"/api/v1/projects/{project.id}/prompts",
        json=body,
        headers=bearer(session, make_user(session)),
    )

    assert response.status_code == 422
    assert "control character" in str(response.json()["detail"])
    assert count(session, Prompt) == 0


def test_tabs_and_line_breaks_are_kept(client, session) -> None:
    project = make_project(session)
    body = {"kind": "plain", "category": "other", "instruction": "One\tTwo\nThree"}
    response = client.post(
        f"/api/v1/projects/{project.id}/prompts",
        json=body,
        headers=bearer(session, make_user(session)),
    )
    assert response.status_code == 201
    assert session.scalar(select(Prompt.instruction)) == "One\tTwo\nThree"


def test_a_body_that_is_not_utf8_gets_a_clear_400(client, session) -> None:
    response = client.post(
        "/api/v1/projects",
        content=b'{"name": "\xff\xfe"}',
        headers={
            **bearer(session, make_user(session, "admin")),
            "content-type": "application/json",
        },
    )
    assert response.status_code in (400, 422)
    assert response.json()["detail"]


def test_invalid_utf8_in_a_form_is_read_as_replacement_characters(client, session) -> None:
    """Browsers always send UTF-8; bytes that are not are read as U+FFFD, never as a crash."""
    project = make_project(session)
    token = login(client, make_user(session))
    response = client.post(
        f"/labeler/projects/{project.id}/prompts",
        content=f"csrf_token={token}&kind=plain&category=other&instruction=%FF%FE".encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert session.scalar(select(Prompt.instruction)) == "\ufffd\ufffd"


def test_sql_looking_text_is_stored_as_it_is(client, session) -> None:
    project = make_project(session)
    text = "Robert'); DROP TABLE prompts; -- and \" OR 1=1 --"
    make_prompt(session, project, make_user(session), instruction=text)
    assert session.scalar(select(Prompt.instruction)) == text


def test_sql_looking_usernames_only_fail_to_log_in(client, session) -> None:
    make_user(session)
    token = csrf_from(client.get("/login").text)
    response = client.post(
        "/login",
        data={"username": "' OR '1'='1' --", "password": "' OR '1'='1", "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 422 and "Wrong username or password." in response.text


# --- Sizes and ranges ----------------------------------------------------------------------------


def test_a_body_over_the_limit_gets_413_and_changes_nothing(client, session, settings) -> None:
    project = make_project(session)
    body = {"kind": "plain", "category": "other", "instruction": "x" * settings.max_request_bytes}
    response = client.post(
        f"/api/v1/projects/{project.id}/prompts",
        json=body,
        headers=bearer(session, make_user(session)),
    )
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]
    assert count(session, Prompt) == 0


def test_a_field_over_its_limit_is_refused_with_its_name(client, session) -> None:
    project = make_project(session)
    body = {"kind": "plain", "category": "other", "instruction": "x" * (MAX_TEXT_CHARS + 1)}
    response = client.post(
        f"/api/v1/projects/{project.id}/prompts",
        json=body,
        headers=bearer(session, make_user(session)),
    )
    assert response.status_code == 422
    assert "instruction" in str(response.json()["detail"])


@pytest.mark.parametrize("big", [2**31, 2**63, 10**30])
def test_an_id_beyond_the_databases_integers_is_a_clear_422(client, session, big) -> None:
    login(client, make_user(session))
    page = client.get(f"/labeler/tasks/{big}")
    api = client.get(f"/api/v1/tasks/{big}", headers=bearer(session, make_user(session)))
    assert page.status_code in (404, 422) and api.status_code in (404, 422)
    assert "Internal Server Error" not in page.text and api.json()["detail"]


# --- Repeated and out-of-order submissions --------------------------------------------------------


def test_a_repeated_ranking_is_stored_once(client, session) -> None:
    project = make_project(session)
    make_ranking_item(session, project)
    headers = bearer(session, make_user(session))
    task = client.post(
        f"/api/v1/projects/{project.id}/tasks/next", params={"kind": "ranking"}, headers=headers
    ).json()
    body = {
        "judgements": [
            {"completion_id": c["id"], "rank": i + 1} for i, c in enumerate(task["completions"])
        ]
    }
    first = client.post(f"/api/v1/tasks/{task['id']}/ranking", json=body, headers=headers)
    again = client.post(f"/api/v1/tasks/{task['id']}/ranking", json=body, headers=headers)
    assert first.json()["id"] == again.json()["id"]
    assert count(session, Ranking) == 1


def test_a_ranking_after_skipping_is_refused(client, session) -> None:
    project = make_project(session)
    make_ranking_item(session, project)
    headers = bearer(session, make_user(session))
    task = client.post(
        f"/api/v1/projects/{project.id}/tasks/next", params={"kind": "ranking"}, headers=headers
    ).json()
    client.post(f"/api/v1/tasks/{task['id']}/skip", json={"reason": "other"}, headers=headers)
    body = {
        "judgements": [
            {"completion_id": c["id"], "rank": i + 1} for i, c in enumerate(task["completions"])
        ]
    }
    response = client.post(f"/api/v1/tasks/{task['id']}/ranking", json=body, headers=headers)
    assert response.status_code == 409 and "skipped" in response.json()["detail"]
    assert count(session, Ranking) == 0


# --- Forged CSRF tokens --------------------------------------------------------------------------


@pytest.mark.parametrize("forge", ["another_session", "tampered", "empty"])
def test_a_forged_csrf_token_is_refused_and_changes_nothing(client, session, forge) -> None:
    project = make_project(session)
    own = login(client, make_user(session))
    cookie = client.cookies.get("rankery_session")
    client.cookies.clear()
    other = csrf_from(client.get("/login").text)
    client.cookies.clear()
    client.cookies.set("rankery_session", cookie)
    token = {
        "another_session": other,
        "tampered": own[:-1] + ("A" if own[-1] != "A" else "B"),
        "empty": "",
    }[forge]

    response = client.post(
        f"/labeler/projects/{project.id}/prompts",
        data={"csrf_token": token, "kind": "plain", "category": "other", "instruction": "Hi"},
    )
    by_header = client.post(
        f"/labeler/projects/{project.id}/prompts",
        data={"kind": "plain", "category": "other", "instruction": "Hi"},
        headers={"X-CSRF-Token": token},
    )

    assert response.status_code == by_header.status_code == 403
    assert count(session, Prompt) == 0


# --- Replayed worker leases ----------------------------------------------------------------------


@pytest.fixture
def job(session, tmp_path):  # type: ignore[no-untyped-def]
    base = make_base_version(session, tmp_path / "base")
    params = {"snapshot": str(make_snapshot_dir(tmp_path / "snap")), "model_version_id": base.id}
    return make_job(session, "sft", params)


def test_a_replayed_finish_is_refused_and_changes_nothing(client, session, job) -> None:
    _worker, headers = make_worker(session)
    spec = client.post("/api/v1/worker/claim", json={}, headers=headers).json()
    finish = {"lease": spec["lease"], "outcome": "failed", "error": "out of memory"}
    first = client.post(f"/api/v1/worker/jobs/{job.id}/finish", json=finish, headers=headers)
    replay = client.post(
        f"/api/v1/worker/jobs/{job.id}/finish",
        json={**finish, "error": "something else"},
        headers=headers,
    )
    assert first.status_code == 200 and replay.status_code == 409
    session.refresh(job)
    assert (job.state, job.error) == ("failed", "out of memory")


def test_an_old_lease_is_refused_after_the_job_went_to_another_worker(client, session, job) -> None:
    _a, first_worker = make_worker(session, "a")
    _b, second_worker = make_worker(session, "b")
    old = client.post(
        "/api/v1/worker/claim", json={"lease_seconds": 1}, headers=first_worker
    ).json()
    session.refresh(job)
    job.lease_expires_at = job.lease_expires_at.replace(year=2000)
    session.commit()
    new = client.post("/api/v1/worker/claim", json={}, headers=second_worker).json()

    replay = client.post(
        f"/api/v1/worker/jobs/{job.id}/heartbeat",
        json={"lease": old["lease"], "step": 5},
        headers=first_worker,
    )

    assert new["job_id"] == job.id and new["lease"] != old["lease"]
    assert replay.status_code == 409
    session.refresh(job)
    assert job.step != 5
