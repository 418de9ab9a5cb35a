"""The screening test in the browser: a candidate takes it on the normal task pages, the admin
builds it, reviews the answers with the scores, grades and decides."""

import re

import pytest

from app.models import Item, ScreeningAttempt, ScreeningTest
from app.schemas.screening import ScreeningPromptIn
from app.services import screening
from tests.factories import login, make_project, make_screening_test, make_user


def rank_in_order(client, token: str, page: str) -> "object":
    """Submit the ranking form on `page`, giving the answers shown ranks in gold order."""
    action = re.search(r'action="(/screening/tasks/\d+/ranking)"', page).group(1)
    shown = re.findall(r'data-id="(\d+)"', page)
    # Completions were created in position order, so ids sort like the gold ranking 1..K.
    ranks = {f"rank_{cid}": str(i + 1) for i, cid in enumerate(sorted(shown, key=int))}
    return client.post(action, data={**ranks, "csrf_token": token})


def test_a_candidate_takes_the_whole_test_on_the_task_pages(client, session) -> None:
    project = make_project(session)
    make_screening_test(session, project)
    candidate = make_user(session, "candidate")
    token = login(client, candidate)

    home = client.get("/screening").text
    assert project.name in home
    first = client.post(f"/screening/projects/{project.id}/start", data={"csrf_token": token})
    assert "Screening test · item 1 of 3" in first.text
    assert "Skip this task" not in first.text
    second = rank_in_order(client, token, first.text)
    third = rank_in_order(client, token, second.text)
    assert "Write a demonstration" in third.text
    action = re.search(r'action="(/screening/tasks/\d+/demonstration)"', third.text).group(1)
    done = client.post(
        action, data={"kind": "single", "answer": "I won't help.", "csrf_token": token}
    )

    assert "You have finished the screening test (3 of 3 items)" in done.text
    assert screening.attempt_of(session, candidate).state == "finished"


def test_a_candidate_cannot_open_someone_elses_screening_task(client, session) -> None:
    project = make_project(session)
    make_screening_test(session, project)
    other = make_user(session, "candidate")
    screening.start(session, project, other)
    task = screening.next_task(session, other)
    login(client, make_user(session, "candidate"))

    assert client.get(f"/screening/tasks/{task.id}").status_code == 404


def test_a_labeler_cannot_take_the_screening_test(client, session) -> None:
    project = make_project(session)
    make_screening_test(session, project)
    token = login(client, make_user(session))

    assert client.get("/screening").status_code == 403
    response = client.post(f"/screening/projects/{project.id}/start", data={"csrf_token": token})
    assert response.status_code == 403
    assert session.query(ScreeningAttempt).count() == 0


def test_a_test_without_gold_answers_tells_the_candidate_and_starts_nothing(
    client, session
) -> None:
    project = make_project(session)
    screening.add_prompt(session, project, ScreeningPromptIn(instruction="Say hi"))
    token = login(client, make_user(session, "candidate"))

    assert "No screening test is open yet" in client.get("/screening").text
    response = client.post(f"/screening/projects/{project.id}/start", data={"csrf_token": token})
    assert response.status_code == 422
    assert "no items with researcher answers" in response.text
    assert session.query(ScreeningAttempt).count() == 0


def test_the_admin_builds_a_test_from_the_page(client, session) -> None:
    project = make_project(session)
    token = login(client, make_user(session, "admin"))
    url = f"/admin/projects/{project.id}/screening"

    assert "candidates cannot start the test" in client.get(url).text
    added = client.post(
        f"{url}/rankings",
        data={
            "csrf_token": token,
            "instruction": "Which answer is best?",
            "checks_flags": "on",
            **{f"completion_{i}": f"answer {i}" for i in range(4)},
            **{f"gold_rank_{i}": str(i + 1) for i in range(4)},
            "gold_flag_3": "harmful",
        },
    )
    prompt = client.post(f"{url}/prompts", data={"csrf_token": token, "instruction": "Insult me"})

    assert added.status_code == prompt.status_code == 200
    assert "gold ranking and gold flags" in prompt.text
    [ranking, demonstration] = screening.test_items(session, project)
    answer = screening.gold.answers(session, {ranking.id})[ranking.id]
    assert (answer.ranks, answer.flags) == ([1, 2, 3, 4], [[], [], [], ["harmful"]])
    assert demonstration.kind == "demonstration"


def test_an_item_without_researcher_answers_is_refused(client, session) -> None:
    project = make_project(session)
    token = login(client, make_user(session, "admin"))

    response = client.post(
        f"/admin/projects/{project.id}/screening/rankings",
        data={"csrf_token": token, "instruction": "Rank", "completion_0": "a", "completion_1": "b"},
    )

    assert response.status_code == 422
    assert "needs researcher answers" in response.text
    assert session.query(Item).count() == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_agreement_percent", "101"),
        ("min_flag_accuracy_percent", "-1"),
        ("min_demonstration_grade", "8"),
    ],
)
def test_thresholds_out_of_range_are_refused(client, session, field, value) -> None:
    project = make_project(session)
    token = login(client, make_user(session, "admin"))
    fields = {
        "min_agreement_percent": "70",
        "min_flag_accuracy_percent": "80",
        "min_demonstration_grade": "5",
    }

    response = client.post(
        f"/admin/projects/{project.id}/screening/settings",
        data={**fields, field: value, "csrf_token": token},
    )

    assert response.status_code == 422
    assert field in response.text
    assert session.query(ScreeningTest).count() == 0


def test_the_admin_reviews_grades_and_approves(client, session) -> None:
    project = make_project(session)
    make_screening_test(session, project)
    candidate = make_user(session, "candidate")
    candidate_token = login(client, candidate)
    page = client.post(
        f"/screening/projects/{project.id}/start", data={"csrf_token": candidate_token}
    ).text
    page = rank_in_order(
        client, candidate_token, rank_in_order(client, candidate_token, page).text
    ).text
    action = re.search(r'action="(/screening/tasks/\d+/demonstration)"', page).group(1)
    client.post(action, data={"kind": "single", "answer": "No.", "csrf_token": candidate_token})
    client.post("/logout", data={"csrf_token": candidate_token})
    attempt = screening.attempt_of(session, candidate)

    token = login(client, make_user(session, "admin"))
    review = client.get(f"/admin/screening/{attempt.id}").text
    demonstration_id = screening.review(session, attempt.id).demonstrations[0].demonstration_id
    graded = client.post(
        f"/admin/screening/{attempt.id}/grades/{demonstration_id}",
        data={"grade": "6", "csrf_token": token},
    ).text
    approved = client.post(
        f"/admin/screening/{attempt.id}/decision", data={"decision": "approve", "csrf_token": token}
    ).text

    assert 'id="score-agreement">100.0 %' in review and "Grade the 1 ungraded" in review
    assert "Passes every threshold." in graded
    assert "The candidate is now approved." in approved
    session.refresh(candidate)
    assert (candidate.role, candidate.labeler_group) == ("labeler", "training")


def test_screening_admin_pages_are_for_admins(client, session) -> None:
    project = make_project(session)
    make_screening_test(session, project)
    candidate = make_user(session, "candidate")
    attempt = screening.start(session, project, candidate)
    token = login(client, make_user(session))

    assert client.get(f"/admin/projects/{project.id}/screening").status_code == 403
    assert client.get(f"/admin/screening/{attempt.id}").status_code == 403
    response = client.post(
        f"/admin/screening/{attempt.id}/decision", data={"decision": "approve", "csrf_token": token}
    )
    assert response.status_code == 403
    session.refresh(candidate)
    assert candidate.role == "candidate"


def test_decisions_need_the_csrf_token(client, session) -> None:
    project = make_project(session)
    make_screening_test(session, project)
    attempt = screening.start(session, project, make_user(session, "candidate"))
    login(client, make_user(session, "admin"))

    response = client.post(f"/admin/screening/{attempt.id}/decision", data={"decision": "reject"})

    assert response.status_code == 403
