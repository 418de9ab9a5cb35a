from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
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
    # Shares of new prompt authors that go to each split (they add up to 1).
    split_train: Mapped[float] = mapped_column(default=0.8)
    split_validation: Mapped[float] = mapped_column(default=0.1)
    split_test: Mapped[float] = mapped_column(default=0.1)
    # The model that writes dialogue suggestions for labelers (none: the newest policy).
    suggestion_model_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SplitAssignment(Base):
    """The split of every prompt author of a project, fixed when the author is first seen."""

    __tablename__ = "split_assignments"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    author_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    split: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
