"""The labeler's pages, driven through plain HTML forms (no JavaScript needed)."""

import json
import re

from sqlalchemy import select

from app.models import Demonstration, Prompt, Ranking, Task
from app.services import import_pairs
from tests.factories import (
    login,
    make_project,
    make_prompt,
    make_ranking_item,
    make_user,
)


def take_task(client, token: str, project_id: int, kind: str):
    return client.post(
        f"/labeler/projects/{project_id}/next", data={"kind": kind, "csrf_token": token}
    )


def test_home_shows_what_waits_and_what_was_done_today(client, session) -> None:
    project = make_project(session, name="Helpful answers")
    make_ranking_item(session, project)
    login(client, make_user(session))
    page = client.get("/labeler").text
    assert "Helpful answers" in page and "Rank completions (1)" in page
    assert "<strong>0</strong> rankings" in page


def test_writing_a_few_shot_prompt_through_the_form(client, session) -> None:
    project = make_project(session)
    token = login(client, make_user(session))
    form_page = client.get(f"/labeler/projects/{project.id}/prompts/new").text
    hidden = dict(re.findall(r'name="(submission_key|form_token)" value="([^"]+)"', form_page))
    fields = {
        **hidden,
        "csrf_token": token,
        "kind": "few_shot",
        "category": "classification",
        "language": "en",
        "instruction": "Label each.",
        "pair_query": ["good", "", "bad"],
        "pair_response": ["positive", "", "negative"],
    }
    client.post(f"/labeler/projects/{project.id}/prompts", data=fields)
    client.post(f"/labeler/projects/{project.id}/prompts", data=fields)  # double click

    [prompt] = session.scalars(select(Prompt)).all()
    assert prompt.few_shot_pairs == [
        {"query": "good", "response": "positive"},
        {"query": "bad", "response": "negative"},
    ]
    assert prompt.time_spent_ms is not None


def test_a_prompt_form_error_keeps_what_was_typed(client, session) -> None:
    project = make_project(session)
    token = login(client, make_user(session))
    response = client.post(
        f"/labeler/projects/{project.id}/prompts",
        data={
            "csrf_token": token,
            "kind": "few_shot",
            "category": "other",
            "instruction": "My careful instruction",
        },
    )
    assert response.status_code == 422
    assert "at least one query/response pair" in response.text
    assert "My careful instruction" in response.text
    assert session.scalar(select(Prompt)) is None


def test_ranking_through_the_form_and_moving_on(client, session) -> None:
    project = make_project(session)
    make_ranking_item(session, project)
    make_ranking_item(session, project)
    labeler = make_user(session)
    token = login(client, labeler)
    page = take_task(client, token, project.id, "ranking")
    task = session.scalar(select(Task).where(Task.labeler_id == labeler.id))
    assert "answer 0" in page.text and "Guidelines" in page.text

    ranks = {f"rank_{cid}": str(i + 1) for i, cid in enumerate(task.completion_order)}
    response = client.post(
        f"/labeler/tasks/{task.id}/ranking",
        data={"csrf_token": token, **ranks, f"quality_{task.completion_order[0]}": "7"},
    )

    assert "Ranking saved." in response.text
    assert response.url.path != f"/labeler/tasks/{task.id}"  # on to the next item
    ranking = session.scalar(select(Ranking))
    assert ranking.task_id == task.id


def test_an_incomplete_ranking_is_refused_with_the_form_kept(client, session) -> None:
    project = make_project(session)
    make_ranking_item(session, project)
    labeler = make_user(session)
    token = login(client, labeler)
    take_task(client, token, project.id, "ranking")
    task = session.scalar(select(Task))
    first = task.completion_order[0]

    response = client.post(
        f"/labeler/tasks/{task.id}/ranking",
        data={"csrf_token": token, f"rank_{first}": "1", f"quality_{first}": "5"},
    )

    assert response.status_code == 422
    assert 'value="5" selected' in response.text
    assert session.scalar(select(Ranking)) is None


def test_a_dialogue_demonstration_through_the_form(client, session) -> None:
    project = make_project(session)
    make_prompt(session, project, make_user(session), instruction="Plan a picnic.")
    token = login(client, make_user(session))
    take_task(client, token, project.id, "demonstration")
    task = session.scalar(select(Task))

    client.post(
        f"/labeler/tasks/{task.id}/demonstration",
        data={
            "csrf_token": token,
            "kind": "dialogue",
            "turn_role": ["assistant", "user", "assistant"],
            "turn_content": ["Where?", "A park.", "Bring a blanket."],
        },
    )

    demonstration = session.scalar(select(Demonstration))
    assert [m["content"] for m in demonstration.messages] == [
        "Plan a picnic.",
        "Where?",
        "A park.",
        "Bring a blanket.",
    ]


def test_skipping_through_the_form(client, session) -> None:
    project = make_project(session)
    make_ranking_item(session, project)
    token = login(client, make_user(session))
    take_task(client, token, project.id, "ranking")
    task = session.scalar(select(Task))

    response = client.post(
        f"/labeler/tasks/{task.id}/skip", data={"csrf_token": token, "reason": "intent_unclear"}
    )

    assert "Skipped." in response.text
    session.refresh(task)
    assert (task.state, task.skip_reason) == ("skipped", "intent_unclear")


def test_another_labelers_task_page_is_not_found(client, session) -> None:
    project = make_project(session)
    make_ranking_item(session, project)
    owner_token = login(client, make_user(session))
    take_task(client, owner_token, project.id, "ranking")
    task = session.scalar(select(Task))
    client.cookies.clear()
    login(client, make_user(session))

    assert client.get(f"/labeler/tasks/{task.id}").status_code == 404


def test_labelers_cannot_open_admin_pages(client, session) -> None:
    login(client, make_user(session))
    for path in ("/admin", "/admin/users", "/admin/projects/new"):
        assert client.get(path).status_code == 403


def test_csrf_token_is_required_to_take_a_task(client, session) -> None:
    project = make_project(session)
    make_ranking_item(session, project)
    login(client, make_user(session))
    response = client.post(f"/labeler/projects/{project.id}/next", data={"kind": "ranking"})
    assert response.status_code == 403
    assert session.scalar(select(Task)) is None


def test_a_ranking_without_ranks_gets_one_plain_message(client, session) -> None:
    project = make_project(session)
    make_ranking_item(session, project)
    token = login(client, make_user(session))
    take_task(client, token, project.id, "ranking")
    task = session.scalar(select(Task))

    response = client.post(f"/labeler/tasks/{task.id}/ranking", data={"csrf_token": token})

    assert response.status_code == 422
    assert "Give every answer a rank: 4 of them have none yet." in response.text


def test_a_lost_lease_says_so_and_keeps_the_typed_answer(client, session) -> None:
    project = make_project(session)
    make_prompt(session, project, make_user(session))
    token = login(client, make_user(session))
    take_task(client, token, project.id, "demonstration")
    task = session.scalar(select(Task))
    task.state = "expired"  # what happens when another labeler takes over the expired lease
    session.commit()

    response = client.post(
        f"/labeler/tasks/{task.id}/demonstration",
        data={"csrf_token": token, "kind": "single", "answer": "My long careful answer"},
    )

    assert response.status_code == 409
    assert "lease on this task ran out" in response.text
    assert "My long careful answer" in response.text
    assert session.scalar(select(Demonstration)) is None


def test_a_dialogue_prompt_shows_the_conversation_before_it(client, session) -> None:
    project = make_project(session, k_min=2)
    pair = {
        "chosen": "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: A joke?\n\nAssistant: Ha.",
        "rejected": "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: A joke?\n\nAssistant: No.",
    }
    [preference] = import_pairs.parse(json.dumps(pair))
    import_pairs.import_pairs(session, project, [preference])
    prompt = session.scalar(select(Prompt))
    make_ranking_item(session, project, k=2, prompt=prompt)
    token = login(client, make_user(session))

    page = take_task(client, token, project.id, "ranking").text

    assert "Hi there" in page and "Hello!" in page and "A joke?" in page
