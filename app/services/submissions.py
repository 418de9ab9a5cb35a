"""Storing a labeler's answer to a task: once, transactionally, and only while they hold it."""

from datetime import datetime
from functools import cache

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.errors import Conflict, InvalidInput
from app.models import (
    Comparison,
    Demonstration,
    Item,
    Project,
    Ranking,
    RankingEntry,
    Slot,
    Task,
    User,
)
from app.models.base import utcnow
from app.schemas.labeling import FLAGS, ComparisonIn, DemonstrationIn, RankingIn
from app.services import pace, suggestions
from app.services.queue import own_task

LEASE_LOST = (
    "Your lease on this task ran out and it went to another labeler, so this answer was not "
    "stored. Copy anything you want to keep, then take the next task."
)


def submit_ranking(session: Session, task_id: int, labeler: User, data: RankingIn) -> Ranking:
    """Store the ranking for a task; a repeated submission returns the stored one unchanged."""
    task = own_task(session, task_id, labeler)
    if task.item.kind != "ranking":
        raise InvalidInput(f"This task asks for a {task.item.kind}, not a ranking.")
    if task.state == "submitted":
        return _stored(session, Ranking, task.id)
    project = _check_ranking(session, task, data)
    now = _finish(session, task, labeler)
    if now is None:
        return _stored(session, Ranking, task.id)
    ranks = _dense(data)
    elapsed = _elapsed_ms(task, now)
    ranking = Ranking(
        task_id=task.id,
        item_id=task.item_id,
        labeler_id=labeler.id,
        has_ties=len(set(ranks.values())) < len(ranks),
        all_bad=data.all_bad,
        time_spent_ms=elapsed,
        too_fast=pace.is_too_fast(session, project, "ranking", elapsed),
        created_at=now,
    )
    session.add(ranking)
    session.flush()
    # One multi-row INSERT that hands back the rows: no INSERT per entry, no reload after.
    entries = session.scalars(
        insert(RankingEntry).returning(RankingEntry),
        [
            {
                "ranking_id": ranking.id,
                "completion_id": j.completion_id,
                "rank": ranks[j.completion_id],
                "quality": j.quality,
                **{flag: flag in j.flags for flag in FLAGS},
            }
            for j in data.judgements
        ],
    ).all()
    set_committed_value(ranking, "entries", sorted(entries, key=lambda e: e.rank))
    if data.better_answer:
        session.add(
            Demonstration(
                prompt_id=task.item.prompt_id,
                labeler_id=labeler.id,
                ranking_id=ranking.id,
                kind="single",
                messages=_conversation(task, [("assistant", data.better_answer)]),
                time_spent_ms=ranking.time_spent_ms,
                too_fast=ranking.too_fast,
                created_at=now,
            )
        )
    session.commit()
    return ranking


def submit_demonstration(
    session: Session, task_id: int, labeler: User, data: DemonstrationIn
) -> Demonstration:
    """Store a demonstration for a task; a repeated submission returns the stored one."""
    task = own_task(session, task_id, labeler)
    if task.item.kind != "demonstration":
        raise InvalidInput(f"This task asks for a {task.item.kind}, not a demonstration.")
    if task.state == "submitted":
        return _stored(session, Demonstration, task.id)
    _check_open(task)
    kept = suggestions.used(session, task, labeler, data)
    now = _finish(session, task, labeler)
    if now is None:
        return _stored(session, Demonstration, task.id)
    turns = (
        [("assistant", data.answer or "")]
        if data.kind == "single"
        else [(t.role, t.content) for t in data.turns]
    )
    project = task.item.project
    elapsed = _elapsed_ms(task, now)
    demonstration = Demonstration(
        prompt_id=task.item.prompt_id,
        labeler_id=labeler.id,
        task_id=task.id,
        kind=data.kind,
        messages=_conversation(task, turns),
        time_spent_ms=elapsed,
        too_fast=pace.is_too_fast(session, project, "demonstration", elapsed),
        suggestions=kept,
        created_at=now,
    )
    session.add(demonstration)
    session.commit()
    return demonstration


def submit_comparison(
    session: Session, task_id: int, labeler: User, data: ComparisonIn
) -> Comparison:
    """Store the labeler's choice between the two answers as shown to them (a is the first);
    a repeated submission returns the stored one unchanged."""
    task = own_task(session, task_id, labeler)
    if task.item.kind != "comparison":
        raise InvalidInput(f"This task asks for a {task.item.kind}, not a comparison.")
    if task.state == "submitted":
        return _stored(session, Comparison, task.id)
    _check_open(task)
    shown = task.completion_order or []
    if len(shown) != 2:
        raise InvalidInput("A comparison needs exactly two answers; this task has no pair.")
    now = _finish(session, task, labeler)
    if now is None:
        return _stored(session, Comparison, task.id)
    project = task.item.project
    elapsed = _elapsed_ms(task, now)
    comparison = Comparison(
        task_id=task.id,
        item_id=task.item_id,
        labeler_id=labeler.id,
        winner_id={"a": shown[0], "b": shown[1], "tie": None}[data.choice],
        time_spent_ms=elapsed,
        too_fast=pace.is_too_fast(session, project, "comparison", elapsed),
        created_at=now,
    )
    session.add(comparison)
    session.commit()
    return comparison


def _check_open(task: Task) -> None:
    if task.state == "expired":
        raise Conflict(LEASE_LOST)
    if task.state == "skipped":
        raise Conflict("You skipped this task, so it cannot be submitted any more.")


def _check_ranking(session: Session, task: Task, data: RankingIn) -> Project:
    """The task's project, once the ranking is known to fit the task and the project."""
    _check_open(task)
    shown = set(task.completion_order or [])
    given = {j.completion_id for j in data.judgements}
    if given != shown:
        raise InvalidInput(
            "The ranking must cover exactly the completions shown for this task "
            f"({len(shown)} of them)."
        )
    project = task.item.project
    if not project.k_min <= len(shown) <= project.k_max:
        raise InvalidInput(
            f"This item has K = {len(shown)} completions, outside the project's range "
            f"{project.k_min}..{project.k_max}."
        )
    if max(j.rank for j in data.judgements) > len(shown):
        raise InvalidInput(f"Ranks go from 1 to {len(shown)}.")
    return project


@cache
def _take_task():  # type: ignore[no-untyped-def]
    """Parameters: task_id, now."""
    return (
        update(Task)
        .where(Task.id == bindparam("task_id"), Task.state == "active")
        .values(state="submitted", finished_at=bindparam("now"))
        .execution_options(synchronize_session=False)
    )


@cache
def _take_slot():  # type: ignore[no-untyped-def]
    """Parameters: slot_id, holder."""
    return (
        update(Slot)
        .where(
            Slot.id == bindparam("slot_id"),
            Slot.state == "leased",
            Slot.labeler_id == bindparam("holder"),
        )
        .values(state="done", lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


def _finish(session: Session, task: Task, labeler: User) -> datetime | None:
    """Mark task and slot done and return the time; None if a concurrent copy of this
    submission won the race (its result is stored); raise if the lease went to someone else."""
    now = utcnow()
    took_task = (
        session.connection().execute(_take_task(), {"task_id": task.id, "now": now}).rowcount
    )
    if not took_task:
        session.rollback()
        session.refresh(task)
        _check_open(task)
        return None
    took_slot = (
        session.connection()
        .execute(_take_slot(), {"slot_id": task.slot_id, "holder": labeler.id})
        .rowcount
    )
    if not took_slot:
        session.rollback()
        raise Conflict(LEASE_LOST)
    set_committed_value(task, "state", "submitted")
    set_committed_value(task, "finished_at", now)
    return now


def _stored(session: Session, model: type, task_id: int):  # type: ignore[no-untyped-def]
    return session.scalar(select(model).where(model.task_id == task_id))


def _conversation(task: Task, turns: list[tuple[str, str]]) -> list[dict[str, str]]:
    item: Item = task.item
    messages = item.prompt.messages()
    messages += [{"role": role, "content": content} for role, content in turns]
    return messages


def _dense(data: RankingIn) -> dict[int, int]:
    """Ranks renumbered 1, 2, 3... so that ties [1, 1, 3] and [1, 1, 2] mean the same."""
    levels = {rank: i + 1 for i, rank in enumerate(sorted({j.rank for j in data.judgements}))}
    return {j.completion_id: levels[j.rank] for j in data.judgements}


def _elapsed_ms(task: Task, now: datetime) -> int:
    return max(0, int((now - task.served_at).total_seconds() * 1000))
