"""Researcher answers and the screening of candidates.

A *gold answer* is what researchers say the right answer to a ranking item is: a ranking of its
completions, flags on them, or both. Gold items mixed into the normal queue and screening-test
items carry one. A *screening attempt* is one candidate's pass through a project's screening
test, from start to the admin's decision.
"""

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models.base import utcnow

ATTEMPT_STATES = ("started", "finished", "approved", "held_out", "rejected")


class GoldAnswer(Base):
    __tablename__ = "gold_answers"

    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), primary_key=True)
    # By completion position: ranks[i] is the rank of completion i (1 best, ties allowed);
    # flags[i] the flags (labeling.FLAGS keys) it should get. None: not part of the answer.
    ranks: Mapped[list[int] | None] = mapped_column(JSON)
    flags: Mapped[list[list[str]] | None] = mapped_column(JSON)


class ScreeningTest(Base):
    """A project's screening test: its items are the project's items with purpose "screening";
    this row holds the pass thresholds."""

    __tablename__ = "screening_tests"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), unique=True)
    min_agreement_percent: Mapped[int] = mapped_column(default=70)
    min_flag_accuracy_percent: Mapped[int] = mapped_column(default=80)
    min_demonstration_grade: Mapped[int] = mapped_column(default=5)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScreeningAttempt(Base):
    __tablename__ = "screening_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    state: Mapped[str] = mapped_column(String(10), default="started")  # ATTEMPT_STATES
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
