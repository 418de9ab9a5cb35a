"""Which ranking items several labelers rank, so that agreement can be measured.

Ranking items are numbered 0, 1, 2, ... per project in the order they are queued (the project
keeps the count, reserved with one atomic UPDATE, so concurrent imports never share a number).
Item n overlaps when floor((n + 1) * p / 100) > floor(n * p / 100) for an overlap share of
p %: after any N items exactly floor(N * p / 100) overlap, spread evenly (with p = 10, items
9, 19, 29, ...), and the choice depends only on the order of queueing.
"""

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.models import Project


def is_overlap(ordinal: int, percent: int) -> bool:
    return (ordinal + 1) * percent // 100 > ordinal * percent // 100


def slots_for(project: Project, ordinal: int) -> int:
    """Annotations wanted for the project's ranking item number `ordinal`."""
    if is_overlap(ordinal, project.overlap_percent):
        return max(project.annotations_per_item, project.overlap_annotations)
    return project.annotations_per_item


def reserve_ordinals(session: Session, project: Project, count: int) -> range:
    """Number `count` new ranking items of the project (no commit)."""
    end = session.execute(
        update(Project)
        .where(Project.id == project.id)
        # Keep updated_at: this is bookkeeping, not a change of settings.
        .values(
            ranking_items_queued=Project.ranking_items_queued + count,
            updated_at=Project.updated_at,
        )
        .returning(Project.ranking_items_queued)
    ).scalar_one()
    return range(end - count, end)
