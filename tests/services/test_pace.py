"""Too fast: submissions under the project's minimum time are flagged, and labelers with many
flags are listed for review."""

from datetime import timedelta

from sqlalchemy import select, update

from app.models import Demonstration, Ranking, Task
from app.schemas.labeling import DemonstrationIn
from app.services import pace, queue, submissions
from tests.factories import (
    make_project,
    make_prompt,
    make_ranking_item,
    make_user,
    rank_next,
    rank_task,
)


def backdate_next_task(session, project, labeler, kind: str, seconds: float) -> Task:
    """Lease the labeler's next task as if it had been served `seconds` ago."""
    task = queue.next_task(session, project, labeler, kind)
    session.execute(
        update(Task)
        .where(Task.id == task.id)
        .values(served_at=task.served_at - timedelta(seconds=seconds))
    )
    session.commit()
    return task


def test_a_ranking_under_the_absolute_minimum_is_flagged(session) -> None:
    project = make_project(session, min_task_ms=60_000)
    make_ranking_item(session, project)
    ranking = rank_next(session, project, make_user(session), [1, 2, 3, 4])
    assert ranking.too_fast is True


def test_with_no_minimum_nothing_is_flagged(session) -> None:
    project = make_project(session)
    make_ranking_item(session, project)
    assert rank_next(session, project, make_user(session), [1, 2, 3, 4]).too_fast is False


def test_a_demonstration_over_the_minimum_is_not_flagged(session) -> None:
    project = make_project(session, min_task_ms=1_000)
    make_prompt(session, project, make_user(session))
    labeler = make_user(session)
    task = backdate_next_task(session, project, labeler, "demonstration", seconds=30)

    demonstration = submissions.submit_demonstration(
        session, task.id, labeler, DemonstrationIn(kind="single", answer="A poem.")
    )

    assert demonstration.too_fast is False


def test_the_relative_rule_compares_with_the_project_median(session) -> None:
    project = make_project(session, min_task_median_percent=50)
    labelers = [make_user(session) for _ in range(pace.MIN_MEDIAN_SAMPLES + 2)]
    for _ in labelers:
        make_ranking_item(session, project)
    for labeler in labelers[:-2]:
        task = backdate_next_task(session, project, labeler, "ranking", seconds=60)
        rank_task_in_order(session, task, labeler)
    slow_enough, too_quick = labelers[-2:]
    fine = backdate_next_task(session, project, slow_enough, "ranking", seconds=40)
    quick = backdate_next_task(session, project, too_quick, "ranking", seconds=10)

    assert rank_task_in_order(session, fine, slow_enough).too_fast is False
    assert rank_task_in_order(session, quick, too_quick).too_fast is True


def rank_task_in_order(session, task, labeler) -> Ranking:
    return rank_task(session, task, labeler, [1, 2, 3, 4])


def test_labelers_with_many_flags_are_listed_and_their_work_can_be_left_out(session) -> None:
    project = make_project(session, min_task_ms=60_000, too_fast_review_count=2)
    for _ in range(3):
        make_ranking_item(session, project)
    hasty, careful = make_user(session, username="hasty"), make_user(session, username="careful")
    rank_next(session, project, hasty, [1, 2, 3, 4])
    rank_next(session, project, hasty, [1, 2, 3, 4])
    task = backdate_next_task(session, project, careful, "ranking", seconds=120)
    rank_task_in_order(session, task, careful)

    listed = pace.labelers_to_review(session, project)
    counted = session.scalars(
        select(Ranking.labeler_id).where(pace.counted_ranking_condition())
    ).all()
    demonstrations = session.scalars(
        select(Demonstration.id).where(pace.counted_demonstration_condition())
    ).all()

    assert [(t.username, t.flagged, t.submitted, t.share) for t in listed] == [("hasty", 2, 2, 1.0)]
    assert counted == [careful.id]
    assert demonstrations == []
