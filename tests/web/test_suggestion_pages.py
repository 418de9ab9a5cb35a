"""The Suggest button's endpoints (htmx fragments) and the admin's choice of suggestion model:
a polling "generating" state, the ready text, a clear message when nothing can answer, only
for the labeler's own task, with CSRF."""

from pathlib import Path

import pytest

from app.models import Demonstration, Job
from app.models.base import utcnow
from app.schemas.jobs import ClaimIn, FinishIn
from app.services import leases, queue
from tests.factories import (
    login,
    make_base_version,
    make_project,
    make_prompt,
    make_user,
    make_worker,
)

HTMX = {"HX-Request": "true"}


@pytest.fixture
def setup(client, session, tmp_path: Path) -> dict:
    project = make_project(session)
    make_prompt(session, project, make_user(session))
    labeler = make_user(session)
    task = queue.next_task(session, project, labeler, "demonstration")
    worker, _headers = make_worker(session)
    worker.last_seen_at = utcnow()
    session.commit()
    csrf = login(client, labeler)
    return {"project": project, "task": task, "worker": worker, "csrf": csrf}


def with_policy(session, setup, tmp_path: Path):
    base = make_base_version(session, tmp_path / "policy")
    setup["project"].suggestion_model_id = base.id
    session.commit()
    return base


def ask(client, setup, content: str = ""):
    form = {"csrf_token": setup["csrf"], "turn_role": "assistant", "turn_content": content,
            "turn": "0"}  # fmt: skip
    return client.post(f"/labeler/tasks/{setup['task'].id}/suggestions", data=form, headers=HTMX)


def test_the_demonstration_page_has_a_suggest_button_per_assistant_turn(client, setup) -> None:
    page = client.get(f"/labeler/tasks/{setup['task'].id}").text
    assert page.count('class="suggest-button"') == 2  # the first turn, and the turn template
    assert f'hx-post="/labeler/tasks/{setup["task"].id}/suggestions"' in page


def test_asking_queues_a_suggestion_and_the_fragment_polls_while_it_is_generated(
    client, session, setup, tmp_path
) -> None:
    with_policy(session, setup, tmp_path)
    response = ask(client, setup)
    [job] = session.query(Job).filter(Job.kind == "suggest").all()
    assert "Generating a suggestion…" in response.text
    poll = f'hx-get="/labeler/tasks/{setup["task"].id}/suggestions/{job.id}"'
    assert poll in response.text and 'hx-trigger="load delay:1s"' in response.text
    assert poll in client.get(f"/labeler/tasks/{setup['task'].id}/suggestions/{job.id}").text


def test_a_written_suggestion_comes_back_as_the_text_for_the_turn(
    client, session, setup, tmp_path
) -> None:
    with_policy(session, setup, tmp_path)
    ask(client, setup)
    spec = leases.claim_job(session, setup["worker"], ClaimIn(), tmp_path)
    finish = FinishIn(lease=spec.lease, outcome="succeeded", result={"text": 'Say "hi" <b>'})
    leases.finish_job(session, spec.job_id, setup["worker"], finish, tmp_path)

    page = client.get(f"/labeler/tasks/{setup['task'].id}/suggestions/{spec.job_id}").text

    assert f'data-suggestion-job="{spec.job_id}"' in page
    assert 'data-suggestion-text="Say &#34;hi&#34; &lt;b&gt;"' in page
    assert "hx-get" not in page  # polling stops


def test_without_a_model_the_button_says_so_and_queues_nothing(client, session, setup) -> None:
    response = ask(client, setup)
    assert response.status_code == 200  # htmx swaps it in
    assert 'role="alert"' in response.text and "No model can suggest yet" in response.text
    assert session.query(Job).count() == 0


def test_without_a_worker_the_button_says_so(client, session, setup, tmp_path) -> None:
    with_policy(session, setup, tmp_path)
    setup["worker"].last_seen_at = None
    session.commit()
    assert "No worker is running" in ask(client, setup).text


def test_asking_needs_the_forms_security_token(client, session, setup, tmp_path) -> None:
    with_policy(session, setup, tmp_path)
    form = {"turn_role": "assistant", "turn_content": "", "turn": "0"}
    response = client.post(f"/labeler/tasks/{setup['task'].id}/suggestions", data=form)
    assert response.status_code == 403 and session.query(Job).count() == 0


def test_another_labeler_cannot_ask_for_or_read_a_suggestion(
    client, session, setup, tmp_path
) -> None:
    with_policy(session, setup, tmp_path)
    ask(client, setup)
    [job] = session.query(Job).all()
    other = make_user(session)
    setup = {**setup, "csrf": login(client, other)}
    assert "There is no task" in ask(client, setup).text
    assert session.query(Job).count() == 1
    url = f"/labeler/tasks/{setup['task'].id}/suggestions/{job.id}"
    assert client.get(url).status_code == 404


def test_a_submitted_dialogue_records_the_suggestion_it_used(
    client, session, setup, tmp_path
) -> None:
    with_policy(session, setup, tmp_path)
    ask(client, setup)
    spec = leases.claim_job(session, setup["worker"], ClaimIn(), tmp_path)
    finish = FinishIn(lease=spec.lease, outcome="succeeded", result={"text": "Suggested."})
    leases.finish_job(session, spec.job_id, setup["worker"], finish, tmp_path)
    form = {"csrf_token": setup["csrf"], "kind": "dialogue", "turn_role": "assistant",
            "turn_suggestion": str(spec.job_id), "turn_content": "Suggested, edited."}  # fmt: skip

    client.post(f"/labeler/tasks/{setup['task'].id}/demonstration", data=form)

    [demonstration] = session.query(Demonstration).all()
    assert demonstration.suggestions[0]["job_id"] == spec.job_id
    assert demonstration.suggestions[0]["edited"] is True


def test_an_admin_chooses_the_suggestion_model_of_a_project(client, session, tmp_path) -> None:
    project = make_project(session)
    base = make_base_version(session, tmp_path / "base", name="tiny-base")
    csrf = login(client, make_user(session, "admin"))
    assert "nothing yet: no policy" in client.get("/admin/models").text
    form = {"csrf_token": csrf, "model_version_id": str(base.id)}
    page = client.post(f"/admin/projects/{project.id}/suggestion-model", data=form).text
    assert f"tiny-base (v{base.id})" in page
    session.refresh(project)
    assert project.suggestion_model_id == base.id


def test_labelers_cannot_choose_the_suggestion_model(client, session, setup) -> None:
    form = {"csrf_token": setup["csrf"], "model_version_id": ""}
    url = f"/admin/projects/{setup['project'].id}/suggestion-model"
    assert client.post(url, data=form).status_code == 403
