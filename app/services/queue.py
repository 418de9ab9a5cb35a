"""Handing out work: leases on item slots.

A slot is claimed with a compare-and-set UPDATE (open, or leased with an expired lease), which
is atomic on SQLite and PostgreSQL alike, so two labelers never hold the same slot. The unique
(item, labeler) key on tasks means nobody is served the same item twice, even from two tabs.
The oldest waiting item goes first. Concurrent labelers do not queue up behind each other for
it: on PostgreSQL the head of the queue is read with FOR UPDATE SKIP LOCKED, so a claim in
flight is passed over; on SQLite writers take turns anyway (BEGIN IMMEDIATE).
"""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import and_, bindparam, exists, func, literal_column, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from app.errors import Conflict, NotFound
from app.models import Item, Project, Prompt, Slot, Task, User
from app.models.base import constant, utcnow
from app.schemas.labeling import SkipIn
from app.services import gold, groups, hygiene

ITEM_KINDS = ("ranking", "demonstration", "comparison")
CLAIM_TRIES = 4


def _claimable(now: datetime):  # type: ignore[no-untyped-def]
    return or_(Slot.state == constant("open"), _lease_expired(now))


def _lease_expired(now: datetime):  # type: ignore[no-untyped-def]
    return and_(Slot.state == constant("leased"), Slot.lease_expires_at < now)


def _available_to(*claimable):  # type: ignore[no-untyped-def]
    """Slots the labeler may be served: normal work (gold items come through gold.py), not
    their own prompt, not an item they already had, prompts cleared by hygiene, items meant for
    the labeler's group. Parameters: labeler_id, project_id, kind."""
    labeler_id = bindparam("labeler_id")
    return (
        select(Slot.id, Slot.item_id)
        .join(Item, Item.id == Slot.item_id)
        .join(Prompt, Prompt.id == Item.prompt_id)
        .where(
            Item.project_id == bindparam("project_id"),
            Item.kind == bindparam("kind"),
            Item.purpose == constant("work"),
            *claimable,
            or_(Prompt.author_id.is_(None), Prompt.author_id != labeler_id),
            hygiene.usable(),
            ~exists().where(Task.item_id == Item.id, Task.labeler_id == labeler_id),
            groups.item_open_to(labeler_id),
        )
    )


@cache
def _head_of_queue(lease_expired: bool):  # type: ignore[no-untyped-def]
    """The id of the first slot the labeler may take, oldest item first. Parameters: those of
    _available_to, and now.

    On PostgreSQL the row is locked (FOR UPDATE SKIP LOCKED): a slot that a concurrent claim
    holds is passed over instead of waited for. SQLite renders no lock and needs none: its
    writers take turns (BEGIN IMMEDIATE), so what a writer reads is current."""
    claimable = (
        _lease_expired(bindparam("now")) if lease_expired else Slot.state == constant("open")
    )
    # Where the queue starts: without this bound PostgreSQL may merge-join from the project's
    # first item, walking every finished one on each call.
    first = select(func.min(Slot.item_id)).where(claimable).scalar_subquery()
    return (
        _available_to(claimable, Item.id >= first)
        .with_only_columns(Slot.id)
        .order_by(Slot.item_id)  # item_id alone: the (state, item_id) index yields it in order
        .limit(constant(1))
        .with_for_update(of=Slot, skip_locked=True)
        .correlate(None)  # the head is found in the whole table, not in the updated row
        .scalar_subquery()
    )


def waiting_counts(session: Session, project_id: int, labeler_id: int) -> dict[str, int]:
    """How many items of each kind this labeler could be served now."""
    now = utcnow()
    counts = {}
    for kind in ITEM_KINDS:
        slots = _available_to(_claimable(now)).subquery()
        counts[kind] = (
            session.scalar(
                select(func.count(func.distinct(slots.c.item_id))),
                {"labeler_id": labeler_id, "project_id": project_id, "kind": kind},
            )
            or 0
        )
    return counts


def next_task(session: Session, project: Project, labeler: User, kind: str) -> Task | None:
    """The labeler's open task of this kind, or a newly leased one; None when nothing waits."""
    if kind not in ITEM_KINDS:
        raise NotFound(f"There is no task kind {kind!r}.")
    if resumed := _resume(session, project, labeler, kind):
        return resumed
    # Gold items, at the project's rate; a labeler who has had them all gets normal work.
    gold_turn = kind == "ranking" and random.random() * 100 < project.gold_percent
    if gold_turn and (served := gold.next_gold_task(session, project, labeler)):
        return served
    for _ in range(CLAIM_TRIES):
        claimed, task = _try_claim(session, project, labeler, kind)
        if not claimed or task is not None:
            return task
    return None


@cache
def _claim_head():  # type: ignore[no-untyped-def]
    """The head of the queue becomes this labeler's, in one statement: the first slot whose
    lease ran out, else the first open one (COALESCE runs its second query only when the
    first finds nothing), if it is still claimable when updated (compare-and-set). Returns the
    slot's id and item, and how many tasks still hold it: those of a labeler whose lease ran
    out. Parameters: those of _available_to, now, expires."""
    head = func.coalesce(_head_of_queue(True), _head_of_queue(False))
    # Spelt out: SQLAlchemy writes RETURNING's columns without their table on SQLite, which
    # inside this subquery would make `id` the task's id.
    updated_slot_id = literal_column(f"{Slot.__tablename__}.id")
    previous_holders = (
        select(func.count())
        .where(Task.slot_id == updated_slot_id, Task.state == constant("active"))
        .scalar_subquery()
    )
    return (
        update(Slot)
        .where(Slot.id == head, _claimable(bindparam("now")))
        .values(
            state="leased",
            labeler_id=bindparam("labeler_id"),
            lease_expires_at=bindparam("expires"),
        )
        .returning(Slot.id, Slot.item_id, previous_holders)
        .execution_options(synchronize_session=False)
    )


@cache
def _expire_previous_task():  # type: ignore[no-untyped-def]
    """Parameters: leased_slot, now."""
    return (
        update(Task)
        .where(Task.slot_id == bindparam("leased_slot"), Task.state == "active")
        .values(state="expired", finished_at=bindparam("now"))
        .execution_options(synchronize_session=False)
    )


@cache
def _item_with_prompt_and_completions():  # type: ignore[no-untyped-def]
    """What the task page shows, in one query. Parameter: item_id."""
    return (
        select(Item)
        .where(Item.id == bindparam("item_id"))
        .options(joinedload(Item.prompt), joinedload(Item.completions))
    )


def _try_claim(
    session: Session, project: Project, labeler: User, kind: str
) -> tuple[bool, Task | None]:
    """(whether a slot was claimed, the new task); a claimed slot without a task means this
    labeler took the same item in a concurrent request, and the claim was rolled back."""
    now = utcnow()
    expires = now + timedelta(seconds=project.lease_seconds)
    params = {
        "labeler_id": labeler.id,
        "project_id": project.id,
        "kind": kind,
        "now": now,
        "expires": expires,
    }
    claimed = session.connection().execute(_claim_head(), params).first()
    if claimed is None:
        session.rollback()
        return False, None
    slot_id, item_id, previous_holders = claimed
    if previous_holders:  # whoever held this slot let the lease run out: their task is over
        session.connection().execute(_expire_previous_task(), {"leased_slot": slot_id, "now": now})
    # Load what the task page shows now, inside this transaction, rather than lazily after it.
    item = session.scalars(_item_with_prompt_and_completions(), {"item_id": item_id}).unique().one()
    order = [c.id for c in item.completions]
    random.shuffle(order)
    task = Task(
        item=item,
        slot_id=slot_id,
        labeler_id=labeler.id,
        completion_order=order or None,
        served_at=now,
        lease_expires_at=expires,
    )
    session.add(task)
    try:
        session.commit()
    except IntegrityError:
        # This labeler claimed the same item in a concurrent request: give the slot back.
        session.rollback()
        return True, None
    return True, task


@cache
def _active_task():  # type: ignore[no-untyped-def]
    """The labeler's newest active task of a kind. Parameters: labeler_id, project_id, kind."""
    return (
        select(Task)
        .join(Item, Item.id == Task.item_id)
        .where(
            Task.labeler_id == bindparam("labeler_id"),
            Task.state == "active",
            Item.project_id == bindparam("project_id"),
            Item.kind == bindparam("kind"),
        )
        .order_by(Task.id.desc())
        .limit(1)
    )


def _resume(session: Session, project: Project, labeler: User, kind: str) -> Task | None:
    """Serve the labeler's unfinished task again (reloaded page, second tab), renewing its lease."""
    task = session.scalar(
        _active_task(), {"labeler_id": labeler.id, "project_id": project.id, "kind": kind}
    )
    if task is None:
        return None
    now = utcnow()
    if task.lease_expires_at > now:
        return task
    expires = now + timedelta(seconds=project.lease_seconds)
    renewed = session.execute(
        update(Slot)
        .where(Slot.id == task.slot_id, Slot.state == "leased", Slot.labeler_id == labeler.id)
        .values(lease_expires_at=expires)
    ).rowcount
    if renewed:
        task.lease_expires_at = expires
    else:
        task.state, task.finished_at = "expired", now
    session.commit()
    return task if renewed else None


@cache
def _task_with_item():  # type: ignore[no-untyped-def]
    """Parameter: task_id."""
    return (
        select(Task)
        .where(Task.id == bindparam("task_id"))
        .options(joinedload(Task.item).joinedload(Item.project))
    )


def own_task(session: Session, task_id: int, labeler: User) -> Task:
    """The labeler's task, its item and project loaded with it; another labeler's task is
    reported as missing, not as forbidden."""
    task = session.scalar(_task_with_item(), {"task_id": task_id})
    if task is None or task.labeler_id != labeler.id:
        raise NotFound(f"There is no task {task_id} for you.")
    return task


def skip_task(session: Session, task_id: int, labeler: User, data: SkipIn) -> Task:
    """Record the skip and give the slot back to the pool for someone else."""
    task = own_task(session, task_id, labeler)
    if task.state == "skipped":
        return task
    if task.state != "active":
        raise Conflict(f"This task is already {task.state}; there is nothing to skip.")
    now = utcnow()
    done = session.execute(
        update(Task)
        .where(Task.id == task.id, Task.state == "active")
        .values(state="skipped", finished_at=now, skip_reason=data.reason, skip_note=data.note)
    ).rowcount
    if done:
        session.execute(
            update(Slot)
            .where(Slot.id == task.slot_id, Slot.state == "leased", Slot.labeler_id == labeler.id)
            .values(state="open", labeler_id=None, lease_expires_at=None)
        )
    session.commit()
    session.refresh(task)
    if task.state != "skipped":
        raise Conflict(f"This task is already {task.state}; there is nothing to skip.")
    return task


@dataclass
class TaskView:
    """What a labeler sees of a task: never the completions' sources."""

    task: Task
    prompt: Prompt
    completions: list[tuple[int, str]]  # (completion id, text), in this labeler's order


def task_view(session: Session, task: Task) -> TaskView:
    item = task.item
    texts = {c.id: c.text for c in item.completions}
    return TaskView(
        task=task,
        prompt=item.prompt,
        completions=[(cid, texts[cid]) for cid in task.completion_order or []],
    )
