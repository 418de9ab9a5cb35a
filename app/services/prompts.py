"""Prompts written by labelers or imported, and the queue items they create."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import NeedsConfirmation
from app.models import Completion, Item, Project, Prompt, Slot, User
from app.models.base import utcnow
from app.schemas.admin import CompletionIn
from app.schemas.labeling import PromptIn
from app.services import hygiene, pii, splits


@dataclass(frozen=True)
class NewItem:
    prompt: Prompt
    kind: str  # "demonstration" | "ranking"
    slots: int  # annotations wanted, no more
    completions: Sequence[CompletionIn] = ()
    external_id: str | None = None


def add_items(session: Session, project: Project, new: Sequence[NewItem]) -> list[Item]:
    """Queue work on prompts (no commit). Slots and completions go in as one multi-row insert
    each, so that bulk imports stay fast (SQLite inserts ORM rows one by one)."""
    items = [
        Item(project_id=project.id, prompt=n.prompt, kind=n.kind, external_id=n.external_id)
        for n in new
    ]
    session.add_all(items)
    session.flush()
    slots = [
        {"item_id": item.id, "index": i}
        for item, n in zip(items, new, strict=True)
        for i in range(n.slots)
    ]
    completions = [
        {
            "item_id": item.id,
            "position": i,
            "text": c.text,
            "model_name": c.model,
            "sampling": c.sampling,
            "external_id": c.id,
        }
        for item, n in zip(items, new, strict=True)
        for i, c in enumerate(n.completions)
    ]
    if slots:
        session.execute(insert(Slot), slots)
    if completions:
        session.execute(insert(Completion), completions)
    return items


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
    _check_hygiene(session, project, prompt, data)
    splits.place(session, project, [prompt])
    session.add(prompt)
    add_items(session, project, [NewItem(prompt, "demonstration", slots=1)])
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


def _check_hygiene(session: Session, project: Project, prompt: Prompt, data: PromptIn) -> None:
    """Warn before storing a likely duplicate or personal data, unless the author confirmed."""
    hygiene.prepare(prompt, data.person_names)
    warnings = []
    if duplicate := hygiene.duplicate_of(session, project, prompt.render()):
        start = duplicate.instruction[:60] + ("…" if len(duplicate.instruction) > 60 else "")
        warnings.append(f"It looks like a duplicate of prompt {duplicate.id} (“{start}”).")
    if prompt.pii_findings:
        found = ", ".join(
            f"{pii.KIND_LABELS[f['kind']]} “{f['text']}”" for f in prompt.pii_findings
        )
        warnings.append(f"It seems to contain personal data: {found}.")
    if warnings and not data.confirm_warnings:
        raise NeedsConfirmation(warnings)


def _by_submission_key(session: Session, author: User, data: PromptIn) -> Prompt | None:
    return session.scalar(
        select(Prompt).where(
            Prompt.author_id == author.id, Prompt.submission_key == data.submission_key
        )
    )


def _elapsed_ms(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() * 1000))
