"""What a labeler did today, for their home page."""

from datetime import datetime, time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Comparison, Demonstration, Prompt, Ranking, Task
from app.models.base import utcnow


def done_today(session: Session, labeler_id: int, now: datetime | None = None) -> dict[str, int]:
    """Counts since midnight UTC of the labeler's prompts, demonstrations, rankings,
    comparisons and skips."""
    since = datetime.combine((now or utcnow()).date(), time.min)

    def count(query) -> int:  # type: ignore[no-untyped-def]
        return session.scalar(query) or 0

    return {
        "prompts": count(
            select(func.count()).where(Prompt.author_id == labeler_id, Prompt.created_at >= since)
        ),
        "demonstrations": count(
            select(func.count()).where(
                Demonstration.labeler_id == labeler_id, Demonstration.created_at >= since
            )
        ),
        "rankings": count(
            select(func.count()).where(
                Ranking.labeler_id == labeler_id, Ranking.created_at >= since
            )
        ),
        "comparisons": count(
            select(func.count()).where(
                Comparison.labeler_id == labeler_id, Comparison.created_at >= since
            )
        ),
        "skips": count(
            select(func.count()).where(
                Task.labeler_id == labeler_id, Task.state == "skipped", Task.finished_at >= since
            )
        ),
    }
