"""What labelers produce and the queue that hands it out.

An *item* is one unit of queued work on a prompt: write a demonstration for it, rank the K
completions attached to it, or compare two (an evaluate job's answers from two model
versions). Each item has a fixed number of *slots* (annotations wanted); a *task* is one
labeler's lease on one slot. A labeler has at most one task per item, ever.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base
from app.models.base import utcnow
from app.models.project import Project

REVIEW_STATES = ("clear", "held", "kept", "redacted", "dropped")
# work: the normal queue. gold: has researcher answers and is mixed into the normal ranking
# queue, one slot per labeler. screening: part of the project's screening test, for candidates.
ITEM_PURPOSES = ("work", "gold", "screening")


class Prompt(Base):
    __tablename__ = "prompts"
    __table_args__ = (
        UniqueConstraint("author_id", "submission_key"),
        Index("ix_prompts_project_dedup_key", "project_id", "dedup_key"),
        Index("ix_prompts_project_user_key", "project_id", "user_key", "id"),
        UniqueConstraint("project_id", "external_id", name="uq_prompts_project_external_id"),
        Index("ix_prompts_project_author_key", "project_id", "author_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    # Null for imported prompts, whose author is known only by external_user_id.
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    external_user_id: Mapped[str | None] = mapped_column(String(128))
    # Who the prompt counts as written by ("user:<id>", "ext:<user id>", "prompt:<source id>"):
    # all prompts with one author key share one split (see app/services/splits.py).
    author_key: Mapped[str] = mapped_column(String(200))
    split: Mapped[str] = mapped_column(String(10))  # train | validation | test
    # Where an imported prompt came from ("oasst:<message id>", "pairs:<hash>", "jsonl:<hash>").
    external_id: Mapped[str | None] = mapped_column(String(200))
    # The conversation before `instruction` (the last user turn), for dialogue prompts.
    context: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    kind: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(16))
    instruction: Mapped[str] = mapped_column(Text)
    use_case: Mapped[str | None] = mapped_column(Text)
    few_shot_pairs: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    submission_key: Mapped[str | None] = mapped_column(String(64))
    time_spent_ms: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Hygiene (app/services/hygiene.py): who wrote it, for the per-user cap ("user:<id>" or
    # "external:<id>"); the normalized start of its text, to find long common prefixes.
    user_key: Mapped[str | None] = mapped_column(String(140))
    dedup_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    # clear | held (personal data found, waiting for an admin) | kept | redacted | dropped
    review_state: Mapped[str] = mapped_column(String(8), default="clear")
    pii_findings: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)

    def render(self) -> str:
        """The last user turn as a model (and a demonstrating labeler) sees it."""
        return render_prompt(self.kind, self.instruction, self.few_shot_pairs)

    def messages(self) -> list[dict[str, str]]:
        """The conversation up to and including the user turn that the answers respond to."""
        return prompt_messages(self.kind, self.instruction, self.few_shot_pairs, self.context)


def render_prompt(kind: str, instruction: str, few_shot_pairs: list[dict[str, str]] | None) -> str:
    if kind != "few_shot" or not few_shot_pairs:
        return instruction
    shots = "\n\n".join(f"Q: {p['query']}\nA: {p['response']}" for p in few_shot_pairs)
    return f"{instruction}\n\n{shots}"


def prompt_messages(
    kind: str,
    instruction: str,
    few_shot_pairs: list[dict[str, str]] | None,
    context: list[dict[str, str]] | None,
) -> list[dict[str, str]]:
    last = {"role": "user", "content": render_prompt(kind, instruction, few_shot_pairs)}
    return [*(context or []), last]


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("project_id", "external_id", name="uq_items_project_external_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "demonstration" | "ranking" | "comparison"
    purpose: Mapped[str] = mapped_column(String(10), default="work")  # ITEM_PURPOSES
    # Set for imported items, so that importing the same file again adds nothing.
    external_id: Mapped[str | None] = mapped_column(String(200))
    # The job whose results this item holds (an evaluate job's comparisons).
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    # Served only to labelers of this group (LABELER_GROUPS); None: to anyone.
    labeler_group: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    project: Mapped[Project] = relationship()
    prompt: Mapped[Prompt] = relationship()
    completions: Mapped[list["Completion"]] = relationship(order_by="Completion.position")


class Completion(Base):
    """A model's answer to rank. Its source is stored for training, never shown to labelers."""

    __tablename__ = "completions"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    position: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    model_name: Mapped[str | None] = mapped_column(String(200))
    sampling: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    external_id: Mapped[str | None] = mapped_column(String(200))  # e.g. "oasst:<message id>"
    # The registered model that wrote it, when known (evaluate jobs need it for win rates).
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))


class Slot(Base):
    __tablename__ = "slots"
    __table_args__ = (
        UniqueConstraint("item_id", "index"),
        Index("ix_slots_state_item", "state", "item_id"),
        # The head of the queue, oldest item first, whatever share of the slots is done.
        Index(
            "ix_slots_open_item",
            "item_id",
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    index: Mapped[int]
    state: Mapped[str] = mapped_column(String(8), default="open")  # open | leased | done
    labeler_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    lease_expires_at: Mapped[datetime | None]


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("item_id", "labeler_id"),
        Index("ix_tasks_labeler_state", "labeler_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id"), index=True)
    labeler_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # active | submitted | skipped | expired (its slot went to someone else)
    state: Mapped[str] = mapped_column(String(10), default="active")
    # The per-labeler random order in which the completions were shown.
    completion_order: Mapped[list[int] | None] = mapped_column(JSON)
    served_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_expires_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    skip_reason: Mapped[str | None] = mapped_column(String(32))
    skip_note: Mapped[str | None] = mapped_column(Text)

    item: Mapped[Item] = relationship()


class Ranking(Base):
    """One labeler's ranking of one item's completions (rank 1 is best; equal ranks are ties)."""

    __tablename__ = "rankings"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), unique=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    labeler_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    has_ties: Mapped[bool] = mapped_column(default=False)
    all_bad: Mapped[bool] = mapped_column(default=False)
    time_spent_ms: Mapped[int | None]  # unknown for imported rankings
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Submitted faster than the project's minimum (app/services/pace.py).
    too_fast: Mapped[bool] = mapped_column(default=False)

    entries: Mapped[list["RankingEntry"]] = relationship(order_by="RankingEntry.rank")


class RankingEntry(Base):
    __tablename__ = "ranking_entries"
    __table_args__ = (UniqueConstraint("ranking_id", "completion_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ranking_id: Mapped[int] = mapped_column(ForeignKey("rankings.id", ondelete="CASCADE"))
    completion_id: Mapped[int] = mapped_column(ForeignKey("completions.id"))
    rank: Mapped[int]
    quality: Mapped[int | None]  # 1-7 Likert, overall quality
    fails_instruction: Mapped[bool] = mapped_column(default=False)
    hallucination: Mapped[bool] = mapped_column(default=False)
    harmful: Mapped[bool] = mapped_column(default=False)
    sexual_or_violent: Mapped[bool] = mapped_column(default=False)


class Comparison(Base):
    """One labeler's choice between the two completions of a comparison item."""

    __tablename__ = "comparisons"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), unique=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    labeler_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # The preferred completion; None for a tie.
    winner_id: Mapped[int | None] = mapped_column(ForeignKey("completions.id"))
    time_spent_ms: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Submitted faster than the project's minimum (app/services/pace.py).
    too_fast: Mapped[bool] = mapped_column(default=False)


class Demonstration(Base):
    """A labeler-written answer, stored as the whole conversation it completes."""

    __tablename__ = "demonstrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    labeler_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # Set when written for a demonstration task; a "better answer" from a ranking sets ranking_id.
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"), unique=True)
    ranking_id: Mapped[int | None] = mapped_column(ForeignKey("rankings.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # "single" | "dialogue"
    messages: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    time_spent_ms: Mapped[int | None]  # unknown for imported demonstrations
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Submitted faster than the project's minimum (app/services/pace.py).
    too_fast: Mapped[bool] = mapped_column(default=False)
    # An admin's 1-7 grade (screening tests grade candidates' demonstrations).
    admin_grade: Mapped[int | None]
    # Model suggestions the labeler took into assistant turns (app/services/suggestions.py):
    # [{"turn", "job_id", "model_version_id", "edited"}]; empty when none was used.
    suggestions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
