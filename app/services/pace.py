"""Too fast: submissions quicker than a plausible minimum are flagged.

InstructGPT paid labelers by time and removed those who labeled implausibly fast. A ranking or
demonstration is flagged *too fast* when its time on task is under the project's minimum: the
absolute min_task_ms, or min_task_median_percent of the project's median time for that task
kind (over the latest MEDIAN_SAMPLE submissions, once there are MIN_MEDIAN_SAMPLES), whichever
is larger; 0 turns a rule off. The flag is stored on the submission (Ranking.too_fast,
Demonstration.too_fast), so code that builds training data excludes flagged work with

    counted_ranking_condition()          # Ranking.too_fast is false
    counted_demonstration_condition()    # Demonstration.too_fast is false

Labelers with at least too_fast_review_count flagged submissions are listed for review on the
admin quality page.
"""

from dataclasses import dataclass
from statistics import median

from sqlalchemy import ColumnElement, case, func, select, union_all
from sqlalchemy.orm import Session

from app.models import Comparison, Demonstration, Item, Project, Ranking, Task, User

MEDIAN_SAMPLE = 1000
MIN_MEDIAN_SAMPLES = 20


def counted_ranking_condition() -> ColumnElement[bool]:
    """Rankings not flagged too fast (add to export queries)."""
    return Ranking.too_fast.is_(False)


def counted_demonstration_condition() -> ColumnElement[bool]:
    """Demonstrations not flagged too fast (add to export queries)."""
    return Demonstration.too_fast.is_(False)


def _recent_times(session: Session, project: Project, kind: str) -> list[int]:
    if kind == "ranking":
        query = (
            select(Ranking.time_spent_ms)
            .join(Item, Item.id == Ranking.item_id)
            .order_by(Ranking.id.desc())
        )
    elif kind == "comparison":
        query = (
            select(Comparison.time_spent_ms)
            .join(Item, Item.id == Comparison.item_id)
            .order_by(Comparison.id.desc())
        )
    else:
        query = (
            select(Demonstration.time_spent_ms)
            .join(Task, Task.id == Demonstration.task_id)
            .join(Item, Item.id == Task.item_id)
            .order_by(Demonstration.id.desc())
        )
    query = query.where(Item.project_id == project.id, Item.purpose != "screening")
    return list(session.scalars(query.limit(MEDIAN_SAMPLE)))


def minimum_ms(session: Session, project: Project, kind: str) -> float:
    """The fastest plausible time on a task of this kind, now (0: no minimum)."""
    minimum = float(project.min_task_ms)
    if project.min_task_median_percent:
        times = _recent_times(session, project, kind)
        if len(times) >= MIN_MEDIAN_SAMPLES:
            minimum = max(minimum, median(times) * project.min_task_median_percent / 100)
    return minimum


def is_too_fast(session: Session, project: Project, kind: str, time_spent_ms: int) -> bool:
    return time_spent_ms < minimum_ms(session, project, kind)


@dataclass(frozen=True)
class TooFastLabeler:
    labeler_id: int
    username: str
    flagged: int
    submitted: int
    share: float


def labelers_to_review(session: Session, project: Project) -> list[TooFastLabeler]:
    """Labelers with at least the project's too_fast_review_count flagged submissions in it,
    most flags first."""
    rankings = (
        select(Ranking.labeler_id.label("labeler_id"), Ranking.too_fast.label("too_fast"))
        .join(Item, Item.id == Ranking.item_id)
        .where(Item.project_id == project.id)
    )
    demonstrations = (
        select(Demonstration.labeler_id, Demonstration.too_fast)
        .join(Task, Task.id == Demonstration.task_id)
        .join(Item, Item.id == Task.item_id)
        .where(Item.project_id == project.id)
    )
    work = union_all(rankings, demonstrations).subquery()
    flagged = func.sum(case((work.c.too_fast, 1), else_=0))
    rows = session.execute(
        select(User.id, User.username, flagged, func.count())
        .join(work, work.c.labeler_id == User.id)
        .group_by(User.id, User.username)
        .having(flagged >= project.too_fast_review_count)
        .order_by(flagged.desc(), User.username)
    )
    return [
        TooFastLabeler(labeler_id, username, int(count), int(total), int(count) / int(total))
        for labeler_id, username, count, total in rows
    ]
