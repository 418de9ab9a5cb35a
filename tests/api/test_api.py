"""The JSON API: the labeler's cycle, admin actions, and who may call what."""

import pytest
from sqlalchemy import select

from app.models import Completion, Ranking
from tests.factories import bearer, make_project, make_prompt, make_ranking_item, make_user


@pytest.fixture
def project(session):
    return make_project(session)


def test_health_answers_without_a_token(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/api/v1/health").json() == {"status": "ok"}


def test_the_openapi_schema_lists_the_api(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/projects/{project_id}/tasks/next" in paths
    assert "/api/v1/tasks/{task_id}/ranking" in paths


def test_a_labeler_leases_and_ranks_through_the_api(client, session, project) -> None:
    make_ranking_item(session, project, k=4)
    headers = bearer(session, make_user(session))

    task = client.post(
        f"/api/v1/projects/{project.id}/tasks/next", params={"kind": "ranking"}, headers=headers
    ).json()
    judgements = [
        {"completion_id": c["id"], "rank": i + 1} for i, c in enumerate(task["completions"])
    ]
    response = client.post(
        f"/api/v1/tasks/{task['id']}/ranking", json={"judgements": judgements}, headers=headers
    )

    assert response.status_code == 200, response.text
    assert len(response.json()["entries"]) == 4
    assert session.scalar(select(Ranking)).task_id == task["id"]


def test_the_completions_source_is_never_shown_to_labelers(client, session, project) -> None:
    make_ranking_item(session, project)
    headers = bearer(session, make_user(session))
    task = client.post(
        f"/api/v1/projects/{project.id}/tasks/next", params={"kind": "ranking"}, headers=headers
    )
    assert "model-a" not in task.text and "temperature" not in task.text
    assert set(task.json()["completions"][0]) == {"id", "text"}


def test_next_task_answers_204_when_nothing_waits(client, session, project) -> None:
    headers = bearer(session, make_user(session))
    response = client.post(
        f"/api/v1/projects/{project.id}/tasks/next", params={"kind": "ranking"}, headers=headers
    )
    assert response.status_code == 204


def test_a_labeler_writes_a_prompt_once_per_submission_key(client, session, project) -> None:
    headers = bearer(session, make_user(session))
    body = {
        "kind": "few_shot",
        "category": "classification",
        "instruction": "Label the sentiment.",
        "few_shot_pairs": [{"query": "Great!", "response": "positive"}],
        "submission_key": "retry-key-0001",
    }
    url = f"/api/v1/projects/{project.id}/prompts"
    first = client.post(url, json=body, headers=headers)
    again = client.post(url, json=body, headers=headers)

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"] and again.json()["created"] is False


def test_a_demonstration_and_a_skip_through_the_api(client, session, project) -> None:
    make_prompt(session, project, make_user(session))
    make_prompt(session, project, make_user(session))
    headers = bearer(session, make_user(session))
    url = f"/api/v1/projects/{project.id}/tasks/next"

    first = client.post(url, params={"kind": "demonstration"}, headers=headers).json()
    done = client.post(
        f"/api/v1/tasks/{first['id']}/demonstration",
        json={"kind": "single", "answer": "Roses are red."},
        headers=headers,
    )
    second = client.post(url, params={"kind": "demonstration"}, headers=headers).json()
    skipped = client.post(
        f"/api/v1/tasks/{second['id']}/skip", json={"reason": "intent_unclear"}, headers=headers
    )

    assert done.json()["messages"][-1]["content"] == "Roses are red."
    assert skipped.json()["state"] == "skipped"


def test_an_admin_adds_ranking_items_in_bulk_with_their_source(client, session, project) -> None:
    headers = bearer(session, make_user(session, "admin"))
    completions = [
        {"text": f"a{i}", "model": "sft-1", "sampling": {"top_p": 0.9}} for i in range(4)
    ]
    items = [{"prompt": {"instruction": q}, "completions": completions} for q in ("Why?", "How?")]

    response = client.post(
        f"/api/v1/projects/{project.id}/ranking-items", json=items, headers=headers
    )

    assert response.status_code == 201 and response.json()["created"] == 2
    stored = session.scalars(select(Completion)).all()
    assert {(c.model_name, c.sampling["top_p"]) for c in stored} == {("sft-1", 0.9)}


def test_a_bulk_add_drops_repeated_prompts_and_says_which(client, session, project) -> None:
    headers = bearer(session, make_user(session, "admin"))
    items = [
        {
            "prompt": {"instruction": "Why is the sky blue?"},
            "completions": [{"text": f"{model} answer {i}"} for i in range(4)],
        }
        for model in ("first", "second")
    ]

    response = client.post(
        f"/api/v1/projects/{project.id}/ranking-items", json=items, headers=headers
    )

    assert response.json()["created"] == 1
    assert response.json()["dropped_duplicates"] == ["item 2: duplicate of item 1"]


def test_adding_the_same_ranking_items_again_adds_nothing(client, session, project) -> None:
    headers = bearer(session, make_user(session, "admin"))
    items = [{"prompt": {"instruction": "Why?"}, "completions": [{"text": "a"}] * 4}]
    url = f"/api/v1/projects/{project.id}/ranking-items"
    client.post(url, json=items, headers=headers)

    again = client.post(url, json=items, headers=headers)

    assert again.json() == {
        "created": 0,
        "skipped": 1,
        "item_ids": [],
        "dropped_duplicates": [],
        "held_for_review": 0,
    }
    assert len(session.scalars(select(Completion)).all()) == 4


def test_a_bulk_add_with_a_bad_k_adds_nothing_and_names_the_item(client, session, project) -> None:
    headers = bearer(session, make_user(session, "admin"))
    good = {"prompt": {"instruction": "Q"}, "completions": [{"text": "a"}] * 4}
    bad = {"prompt": {"instruction": "Q"}, "completions": [{"text": "a"}] * 2}

    response = client.post(
        f"/api/v1/projects/{project.id}/ranking-items", json=[good, bad], headers=headers
    )

    assert response.status_code == 422
    assert "item 2: K = 2" in response.json()["detail"]
    assert session.scalar(select(Completion)) is None


def test_requests_without_a_valid_token_are_refused(client, project) -> None:
    assert client.get("/api/v1/me").status_code == 401
    bad = {"Authorization": "Bearer rk_not-a-token"}
    assert client.get("/api/v1/projects", headers=bad).status_code == 401


def test_a_revoked_token_stops_working(client, session) -> None:
    admin_headers = bearer(session, make_user(session, "admin"))
    labeler = make_user(session)
    created = client.post(
        f"/api/v1/users/{labeler.id}/tokens", json={"name": "laptop"}, headers=admin_headers
    ).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/api/v1/me", headers=headers).json()["username"] == labeler.username

    client.delete(f"/api/v1/users/{labeler.id}/tokens/{created['id']}", headers=admin_headers)

    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_a_deactivated_users_token_stops_working(client, session) -> None:
    admin_headers = bearer(session, make_user(session, "admin"))
    labeler = make_user(session)
    headers = bearer(session, labeler)

    client.patch(f"/api/v1/users/{labeler.id}", json={"is_active": False}, headers=admin_headers)

    assert client.get("/api/v1/me", headers=headers).status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/users"),
        ("post", "/api/v1/users"),
        ("post", "/api/v1/projects"),
        ("put", "/api/v1/projects/1"),
        ("post", "/api/v1/projects/1/ranking-items"),
        ("patch", "/api/v1/users/1"),
        ("post", "/api/v1/users/1/tokens"),
        ("delete", "/api/v1/users/1/tokens/1"),
    ],
)
def test_labelers_cannot_call_admin_endpoints(client, session, method, path) -> None:
    headers = bearer(session, make_user(session))
    assert getattr(client, method)(path, headers=headers).status_code == 403


def test_admins_cannot_take_labeling_tasks(client, session, project) -> None:
    headers = bearer(session, make_user(session, "admin"))
    response = client.post(
        f"/api/v1/projects/{project.id}/tasks/next", params={"kind": "ranking"}, headers=headers
    )
    assert response.status_code == 403


def test_a_labeler_cannot_read_another_labelers_task(client, session, project) -> None:
    make_ranking_item(session, project)
    owner, other = make_user(session), make_user(session)
    task = client.post(
        f"/api/v1/projects/{project.id}/tasks/next",
        params={"kind": "ranking"},
        headers=bearer(session, owner),
    ).json()

    response = client.get(f"/api/v1/tasks/{task['id']}", headers=bearer(session, other))

    assert response.status_code == 404


def test_an_admin_puts_a_labeler_into_the_held_out_group(client, session) -> None:
    labeler = make_user(session)
    headers = bearer(session, make_user(session, "admin"))

    moved = client.put(
        f"/api/v1/users/{labeler.id}/group", json={"labeler_group": "held_out"}, headers=headers
    )
    refused = client.put(
        f"/api/v1/users/{labeler.id}/group", json={"labeler_group": "vip"}, headers=headers
    )

    assert moved.status_code == 200 and moved.json()["labeler_group"] == "held_out"
    assert refused.status_code == 422


def test_a_gold_task_looks_exactly_like_any_other_ranking_task(client, session) -> None:
    """Same fields, and no value that gives the item away."""
    admin, labeler = make_user(session, "admin"), make_user(session)
    admin_headers, headers = bearer(session, admin), bearer(session, labeler)
    project = make_project(session, gold_percent=100)
    created = client.post(
        f"/api/v1/projects/{project.id}/gold-items",
        json=[
            {
                "instruction": "Best?",
                "completions": ["a", "b", "c", "d"],
                "gold_ranks": [1, 2, 3, 4],
            }
        ],
        headers=admin_headers,
    )
    make_ranking_item(session, project)

    gold_task = client.post(
        f"/api/v1/projects/{project.id}/tasks/next?kind=ranking", headers=headers
    ).json()
    ranks = [
        {"completion_id": c["id"], "rank": i + 1} for i, c in enumerate(gold_task["completions"])
    ]
    client.post(
        f"/api/v1/tasks/{gold_task['id']}/ranking", json={"judgements": ranks}, headers=headers
    )
    normal_task = client.post(
        f"/api/v1/projects/{project.id}/tasks/next?kind=ranking", headers=headers
    ).json()

    assert created.status_code == 201
    assert gold_task["prompt_id"] != normal_task["prompt_id"]
    assert set(gold_task) == set(normal_task)
    assert "gold" not in str(gold_task).lower()
    assert gold_task["prompt_kind"] == normal_task["prompt_kind"]


def test_a_gold_item_without_answers_is_refused(client, session) -> None:
    headers = bearer(session, make_user(session, "admin"))
    project = make_project(session)
    response = client.post(
        f"/api/v1/projects/{project.id}/gold-items",
        json=[{"instruction": "Best?", "completions": ["a", "b", "c", "d"]}],
        headers=headers,
    )
    assert response.status_code == 422
    assert "needs researcher answers" in str(response.json())
