"""Prompt hygiene in the browser and the API: warnings on submit, the admin's review page."""

import re

from sqlalchemy import func, select

from app.models import Prompt
from tests.factories import bearer, login, make_project, make_prompt, make_user

PII_TEXT = "Email jane.doe@example.com about Maria Lopez's refund."


def _prompt_fields(client, project, token: str, **fields: str) -> dict:
    page = client.get(f"/labeler/projects/{project.id}/prompts/new").text
    hidden = dict(re.findall(r'name="(submission_key|form_token)" value="([^"]+)"', page))
    return {**hidden, "csrf_token": token, "kind": "plain", "category": "chat", **fields}


def _held_prompt(session, project) -> Prompt:
    return make_prompt(
        session,
        project,
        make_user(session),
        instruction=PII_TEXT,
        person_names=["Maria Lopez"],
        confirm_warnings=True,
    )


def test_the_form_warns_about_personal_data_and_stores_nothing(client, session) -> None:
    project = make_project(session)
    token = login(client, make_user(session))
    fields = _prompt_fields(
        client, project, token, instruction=PII_TEXT, person_names="Maria Lopez"
    )

    page = client.post(f"/labeler/projects/{project.id}/prompts", data=fields).text

    assert 'id="prompt-warnings"' in page and "jane.doe@example.com" in page
    assert "Maria Lopez" in page and 'name="confirm_warnings"' in page
    assert session.scalar(select(func.count()).select_from(Prompt)) == 0


def test_confirming_the_warning_stores_the_prompt_held_for_review(client, session) -> None:
    project = make_project(session)
    token = login(client, make_user(session))
    fields = _prompt_fields(client, project, token, instruction=PII_TEXT, confirm_warnings="on")

    client.post(f"/labeler/projects/{project.id}/prompts", data=fields)

    [prompt] = session.scalars(select(Prompt)).all()
    assert prompt.review_state == "held"


def test_the_form_warns_about_a_duplicate(client, session) -> None:
    project = make_project(session)
    make_prompt(session, project, make_user(session), instruction="Explain tides.")
    token = login(client, make_user(session))
    fields = _prompt_fields(client, project, token, instruction="Explain  tides.")

    page = client.post(f"/labeler/projects/{project.id}/prompts", data=fields).text

    assert "looks like a duplicate of prompt" in page
    assert session.scalar(select(func.count()).select_from(Prompt)) == 1


def test_an_admin_redacts_a_held_prompt_from_the_review_page(client, session) -> None:
    project = make_project(session)
    prompt = _held_prompt(session, project)
    token = login(client, make_user(session, "admin"))
    page = client.get(f"/admin/projects/{project.id}/hygiene").text
    assert f'id="prompt-{prompt.id}"' in page and "jane.doe@example.com" in page

    response = client.post(
        f"/admin/projects/{project.id}/prompts/{prompt.id}/review",
        data={"csrf_token": token, "decision": "redact"},
    )

    assert f"Prompt {prompt.id} is now redacted." in response.text
    session.refresh(prompt)
    assert prompt.instruction == "Email [EMAIL] about [NAME]'s refund."


def test_a_review_without_the_csrf_token_changes_nothing(client, session) -> None:
    project = make_project(session)
    prompt = _held_prompt(session, project)
    login(client, make_user(session, "admin"))
    response = client.post(
        f"/admin/projects/{project.id}/prompts/{prompt.id}/review", data={"decision": "drop"}
    )
    assert response.status_code == 403
    session.refresh(prompt)
    assert prompt.review_state == "held"


def test_labelers_may_not_review_prompts(client, session) -> None:
    project = make_project(session)
    prompt = _held_prompt(session, project)
    token = login(client, make_user(session))
    assert client.get(f"/admin/projects/{project.id}/hygiene").status_code == 403
    response = client.post(
        f"/admin/projects/{project.id}/prompts/{prompt.id}/review",
        data={"csrf_token": token, "decision": "keep"},
    )
    assert response.status_code == 403


def test_the_api_lists_and_reviews_held_prompts(client, session) -> None:
    project = make_project(session)
    prompt = _held_prompt(session, project)
    headers = bearer(session, make_user(session, "admin"))

    [held] = client.get(f"/api/v1/projects/{project.id}/prompts/held", headers=headers).json()
    kept = client.post(
        f"/api/v1/projects/{project.id}/prompts/{prompt.id}/review",
        json={"decision": "keep"},
        headers=headers,
    ).json()

    assert {f["kind"] for f in held["pii_findings"]} == {"email", "name"}
    assert kept["review_state"] == "kept"


def test_the_api_refuses_an_unknown_decision(client, session) -> None:
    project = make_project(session)
    prompt = _held_prompt(session, project)
    headers = bearer(session, make_user(session, "admin"))
    response = client.post(
        f"/api/v1/projects/{project.id}/prompts/{prompt.id}/review",
        json={"decision": "burn"},
        headers=headers,
    )
    assert response.status_code == 422
    session.refresh(prompt)
    assert prompt.review_state == "held"


def test_the_api_lists_users_over_the_cap(client, session) -> None:
    project = make_project(session, max_prompts_per_user=1)
    author = make_user(session)
    make_prompt(session, project, author)
    make_prompt(session, project, author)
    headers = bearer(session, make_user(session, "admin"))

    [row] = client.get(f"/api/v1/projects/{project.id}/users-over-cap", headers=headers).json()

    assert (row["username"], row["prompts"], row["kept"]) == (author.username, 2, 1)


def test_the_api_refuses_hygiene_to_labelers(client, session) -> None:
    project = make_project(session)
    headers = bearer(session, make_user(session))
    for path in ("prompts/held", "users-over-cap"):
        response = client.get(f"/api/v1/projects/{project.id}/{path}", headers=headers)
        assert response.status_code == 403


def test_an_api_prompt_with_personal_data_needs_confirmation(client, session) -> None:
    project = make_project(session)
    headers = bearer(session, make_user(session))
    data = {"kind": "plain", "category": "chat", "instruction": PII_TEXT}

    refused = client.post(f"/api/v1/projects/{project.id}/prompts", json=data, headers=headers)
    stored = client.post(
        f"/api/v1/projects/{project.id}/prompts",
        json={**data, "confirm_warnings": True},
        headers=headers,
    )

    assert refused.status_code == 409 and "e-mail address" in refused.json()["detail"]
    assert stored.status_code == 201
