"""Screening tests: a candidate answers researchers' items, the scores are computed from the
answers, and the admin's decision turns the candidate into a labeler (or not)."""

import pytest

from app.errors import Conflict, InvalidInput
from app.models import Task
from app.schemas.screening import GoldItemIn, ScreeningSettingsIn
from app.services import queue, screening
from tests.factories import (
    make_gold_item,
    make_project,
    make_ranking_item,
    make_screening_test,
    make_user,
    take_screening_test,
)


def test_a_perfect_candidate_scores_full_marks_and_passes_once_graded(session) -> None:
    project = make_project(session)
    make_screening_test(session, project)
    candidate = make_user(session, "candidate")

    take_screening_test(session, project, candidate, [1, 2, 3, 4], ["harmful"])
    attempt = screening.attempt_of(session, candidate)
    waiting = screening.review(session, attempt.id)
    screening.grade_demonstration(
        session, attempt.id, waiting.demonstrations[0].demonstration_id, 6
    )
    graded = screening.review(session, attempt.id)

    assert attempt.state == "finished"
    assert (waiting.scores.ungraded, waiting.scores.passed) == (1, None)
    assert graded.scores.agreement == 1.0
    assert graded.scores.flag_accuracy == 1.0
    assert graded.scores.demonstration_grade == 6
    assert graded.scores.passed is True


def test_reversed_rankings_and_missed_flags_fail(session) -> None:
    project = make_project(session)
    make_screening_test(session, project, min_agreement_percent=50)
    candidate = make_user(session, "candidate")

    take_screening_test(session, project, candidate, [4, 3, 2, 1], [])
    attempt = screening.attempt_of(session, candidate)
    review = screening.review(session, attempt.id)
    screening.grade_demonstration(session, attempt.id, review.demonstrations[0].demonstration_id, 7)
    scores = screening.review(session, attempt.id).scores

    assert scores.agreement == 0.0
    # Four completions by four flags, on the flagged item: one "harmful" missed.
    assert scores.flag_accuracy == 15 / 16
    assert scores.passed is False


def test_the_review_shows_the_answers_beside_the_researchers(session) -> None:
    project = make_project(session)
    make_screening_test(session, project)
    candidate = make_user(session, "candidate")
    take_screening_test(session, project, candidate, [2, 1, 3, 4], ["harmful"])

    review = screening.review(session, screening.attempt_of(session, candidate).id)

    first = review.rankings[0]
    assert [(c.gold_rank, c.rank) for c in first.completions] == [(1, 2), (2, 1), (3, 3), (4, 4)]
    assert first.agreement == 5 / 6
    assert review.rankings[1].completions[0].gold_flags == ["harmful"]
    assert review.demonstrations[0].answer == "I can't help with that."


def test_screening_items_stay_out_of_the_normal_queue(session) -> None:
    project = make_project(session)
    make_screening_test(session, project)
    labeler = make_user(session)
    assert queue.next_task(session, project, labeler, "ranking") is None
    assert queue.next_task(session, project, labeler, "demonstration") is None
    assert queue.waiting_counts(session, project.id, labeler.id) == {
        "ranking": 0,
        "demonstration": 0,
        "comparison": 0,
    }


def test_a_test_without_gold_answers_is_refused(session) -> None:
    project = make_project(session)
    screening.save_settings(session, project, ScreeningSettingsIn())
    candidate = make_user(session, "candidate")

    with pytest.raises(InvalidInput, match="no items with researcher answers"):
        screening.start(session, project, candidate)
    assert screening.attempt_of(session, candidate) is None


def test_an_item_without_answers_cannot_be_added() -> None:
    with pytest.raises(ValueError, match="needs researcher answers"):
        GoldItemIn(instruction="Rank these", completions=["a", "b"])


def test_an_item_with_k_outside_the_project_range_is_refused(session) -> None:
    project = make_project(session, k_min=4)
    with pytest.raises(InvalidInput, match="outside the project's range"):
        make_gold_item(session, project, ranks=[1, 2], purpose="screening")
    assert screening.test_items(session, project) == []


@pytest.mark.parametrize(
    ("decision", "role", "group", "active"),
    [
        ("approve", "labeler", "training", True),
        ("held_out", "labeler", "held_out", True),
        ("reject", "candidate", "training", False),
    ],
)
def test_the_admin_decides(session, decision, role, group, active) -> None:
    project = make_project(session)
    make_screening_test(session, project)
    candidate = make_user(session, "candidate")
    take_screening_test(session, project, candidate, [1, 2, 3, 4], [])
    attempt = screening.attempt_of(session, candidate)

    screening.decide(session, attempt.id, decision)

    session.refresh(candidate)
    assert (candidate.role, candidate.labeler_group, candidate.is_active) == (role, group, active)
    with pytest.raises(Conflict, match="already"):
        screening.decide(session, attempt.id, "approve")


def test_no_decision_before_the_candidate_finishes(session) -> None:
    project = make_project(session)
    make_screening_test(session, project)
    candidate = make_user(session, "candidate")
    attempt = screening.start(session, project, candidate)

    with pytest.raises(Conflict, match="not finished"):
        screening.decide(session, attempt.id, "approve")
    session.refresh(candidate)
    assert candidate.role == "candidate"


def test_a_candidate_resumes_the_task_they_left(session) -> None:
    project = make_project(session)
    make_screening_test(session, project)
    make_ranking_item(session, project)
    candidate = make_user(session, "candidate")
    screening.start(session, project, candidate)

    first = screening.next_task(session, candidate)
    again = screening.next_task(session, candidate)

    assert first.id == again.id
    assert session.query(Task).filter(Task.labeler_id == candidate.id).count() == 1


def test_grades_outside_1_to_7_are_refused(session) -> None:
    project = make_project(session)
    make_screening_test(session, project)
    candidate = make_user(session, "candidate")
    take_screening_test(session, project, candidate, [1, 2, 3, 4], [])
    attempt = screening.attempt_of(session, candidate)
    demonstration_id = screening.review(session, attempt.id).demonstrations[0].demonstration_id

    with pytest.raises(InvalidInput, match="1 to 7"):
        screening.grade_demonstration(session, attempt.id, demonstration_id, 8)
    assert screening.review(session, attempt.id).demonstrations[0].grade is None
