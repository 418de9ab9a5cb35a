from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models.base import utcnow


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    guidelines: Mapped[str] = mapped_column(Text, default="")
    k_min: Mapped[int] = mapped_column(default=4)
    k_max: Mapped[int] = mapped_column(default=9)
    lease_seconds: Mapped[int] = mapped_column(default=1800)
    annotations_per_item: Mapped[int] = mapped_column(default=1)
    # Agreement: this share of ranking items gets overlap_annotations slots instead.
    overlap_percent: Mapped[int] = mapped_column(default=10)
    overlap_annotations: Mapped[int] = mapped_column(default=2)
    # How many ranking items were ever queued; numbers them, to choose the overlap ones exactly.
    ranking_items_queued: Mapped[int] = mapped_column(default=0)
    # Prompt hygiene.
    max_prompts_per_user: Mapped[int] = mapped_column(default=200)
    dedup_min_prefix: Mapped[int] = mapped_column(default=100)
    dedup_prefix_percent: Mapped[int] = mapped_column(default=90)
    # Screening and labeler quality: the share of ranking tasks served from gold items; the
    # fastest plausible submission (absolute, and as a share of the project's median time for
    # the task kind; 0 turns a rule off); flagged submissions that put a labeler up for review.
    gold_percent: Mapped[int] = mapped_column(default=0)
    min_task_ms: Mapped[int] = mapped_column(default=0)
    min_task_median_percent: Mapped[int] = mapped_column(default=0)
    too_fast_review_count: Mapped[int] = mapped_column(default=5)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
