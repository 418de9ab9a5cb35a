"""Prompts written by labelers or imported, and the queue items they create."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import Completion, Item, Project, Prompt, Slot, User
from app.models.base import utcnow
from app.schemas.admin import CompletionIn
from app.schemas.labeling import PromptIn
from app.services import splits


def add_item(
    session: Session,
    project: Project,
    prompt: Prompt,
    kind: str,
    slots: int,
    completions: list[CompletionIn] = (),  # type: ignore[assignment]
    external_id: str | None = None,
) -> Item:
    """Queue work on a prompt: `slots` annotations wanted, no more (no commit)."""
    item = Item(project_id=project.id, prompt=prompt, kind=kind, external_id=external_id)
    session.add(item)
    session.flush()
    session.add_all(Slot(item_id=item.id, index=i) for i in range(slots))
    session.add_all(
        Completion(
            item_id=item.id, position=i, text=c.text, model_name=c.model, sampling=c.sampling
        )
        for i, c in enumerate(completions)
    )
    return item


def create_prompt(
    session: Session,
    project: Project,
    author: User,
    data: PromptIn,
    started_at: datetime | None = None,
) -> tuple[Prompt, bool]:
    """Store a labeler's prompt and queue it for a demonstration by someone else.

    Returns (prompt, created); a repeated submission_key returns the first prompt unchanged.
    """
    if data.submission_key and (existing := _by_submission_key(session, author, data)):
        return existing, False
    now = utcnow()
    prompt = Prompt(
        project_id=project.id,
        author_id=author.id,
        kind=data.kind,
        category=data.category,
        language=data.language,
        instruction=data.instruction,
        author_key=splits.author_key(user_id=author.id),
        use_case=data.use_case,
        few_shot_pairs=[p.model_dump() for p in data.few_shot_pairs] or None,
        submission_key=data.submission_key,
        time_spent_ms=_elapsed_ms(started_at, now) if started_at else None,
        created_at=now,
    )
    splits.place(session, project, [prompt])
    session.add(prompt)
    add_item(session, project, prompt, "demonstration", slots=1)
    try:
        session.commit()
    except IntegrityError:
        # The same submission committed concurrently: return that one.
        session.rollback()
        existing = _by_submission_key(session, author, data)
        if existing is None:
            raise
        return existing, False
    return prompt, True


def _by_submission_key(session: Session, author: User, data: PromptIn) -> Prompt | None:
    return session.scalar(
        select(Prompt).where(
            Prompt.author_id == author.id, Prompt.submission_key == data.submission_key
        )
    )


def _elapsed_ms(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() * 1000))
