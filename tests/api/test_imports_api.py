"""Imports through the API: a JSONL file as the request body, admins only, all or nothing."""

import json
from pathlib import Path

from sqlalchemy import func, select

from app.models import Prompt
from tests.factories import bearer, make_project, make_user

OASST = Path(__file__).parents[1] / "data" / "oasst_3_trees.jsonl"
NDJSON = {"Content-Type": "application/x-ndjson"}


def post(client, project, kind: str, content: bytes, headers: dict):
    return client.post(
        f"/api/v1/projects/{project.id}/imports/{kind}",
        content=content,
        headers={**NDJSON, **headers},
    )


def test_an_admin_imports_oasst_trees_and_a_second_time_adds_nothing(client, session) -> None:
    project = make_project(session)
    admin = bearer(session, make_user(session, "admin"))
    first = post(client, project, "oasst", OASST.read_bytes(), admin)
    second = post(client, project, "oasst", OASST.read_bytes(), admin)
    assert first.status_code == 201 and first.json()["counts"]["rankings"] > 0
    assert second.json()["counts"]["prompts"] == 0
    assert second.json()["counts"]["skipped"] == first.json()["counts"]["prompts"]


def test_pairs_come_in_as_k2_rankings(client, session) -> None:
    project = make_project(session)
    pair = {"prompt": "Why?", "chosen": "Because.", "rejected": "No."}
    result = post(
        client,
        project,
        "pairs",
        json.dumps(pair).encode(),
        bearer(session, make_user(session, "admin")),
    )
    assert result.status_code == 201
    assert result.json()["counts"] == {"rankings": 1, "prompts": 1, "skipped": 0}


def test_a_bad_line_imports_nothing_and_is_named(client, session) -> None:
    project = make_project(session)
    lines = [json.dumps({"prompt": "Why?", "chosen": "a", "rejected": "b"}), '{"chosen": 1}']
    result = post(
        client,
        project,
        "pairs",
        "\n".join(lines).encode(),
        bearer(session, make_user(session, "admin")),
    )
    assert result.status_code == 422 and "line 2" in result.json()["detail"]
    assert session.scalar(select(func.count()).select_from(Prompt)) == 0


def test_labelers_and_anonymous_callers_may_not_import(client, session) -> None:
    project = make_project(session)
    labeler = bearer(session, make_user(session))
    assert post(client, project, "pairs", b"{}", labeler).status_code == 403
    assert post(client, project, "pairs", b"{}", {}).status_code == 401
