"""The audit log of admin actions: who did what, to what, when, with before and after values.

Auditing an action is one call in the service function that does it, before that function's
one commit, so the entry is committed (or rolled back) together with the action:

    job.state = "cancelled"
    audit.record(session, actor, "job.cancelled", job, before={"state": old}, after={...})
    session.commit()

`actor` is the admin who acted, or None for the command line (and the system). `target` is a
model instance (written "job:40"; a new one is flushed to get its id) or a string. A new kind
of action needs a line in ACTIONS (its label on the admin page) and a case in the test that
checks every action leaves exactly one entry (tests/services/test_audit.py). Keep personal
data (prompt texts, passwords, tokens) out of `before` and `after`.
"""

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, inspect, select
from sqlalchemy.orm import Session

from app.db import Base
from app.errors import InvalidInput
from app.models import AuditEntry, User
from app.schemas.audit import AuditFilter

COMMAND_LINE = "command line"

ACTIONS = {
    "user.created": "user created",
    "user.deactivated": "user deactivated",
    "user.activated": "user reactivated",
    "user.group_changed": "labeler group changed",
    "token.created": "API token created",
    "token.revoked": "API token revoked",
    "project.created": "project created",
    "project.updated": "project settings or guidelines changed",
    "screening.settings_saved": "screening thresholds changed",
    "screening.graded": "screening demonstration graded",
    "screening.decided": "candidate approved, held out or rejected",
    "prompt.reviewed": "personal-data review decided",
    "export.requested": "export snapshot made",
    "job.created": "job created",
    "job.cancelled": "job cancelled",
    "job.retried": "job retried",
    "worker.created": "worker token created",
    "worker.revoked": "worker token revoked",
    "model.registered": "base model registered",
}
CSV_COLUMNS = ("id", "created_at", "actor_name", "actor_id", "action", "target", "before", "after")


def record(
    session: Session,
    actor: User | None,
    action: str,
    target: Base | str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an entry for `action` to the session; the caller's commit writes it with the action."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}: add it to audit.ACTIONS")
    entry = AuditEntry(
        actor_id=actor.id if actor else None,
        actor_name=actor.username if actor else COMMAND_LINE,
        action=action,
        target=_target(session, target),
        before=_jsonable(before),
        after=_jsonable(after),
    )
    session.add(entry)
    return entry


def changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields whose values differ, as (before, after)."""
    changed = [k for k in new if old.get(k) != new[k]]
    return {k: old.get(k) for k in changed}, {k: new[k] for k in changed}


def _target(session: Session, target: Base | str | None) -> str | None:
    if target is None or isinstance(target, str):
        return target
    identity = inspect(target).identity
    if identity is None:
        session.flush()
        identity = inspect(target).identity
    kind = re.sub(r"(?<!^)(?=[A-Z])", "_", type(target).__name__).lower()
    return f"{kind}:{':'.join(str(part) for part in identity or ())}"


def _jsonable(values: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if values is None else json.loads(json.dumps(values, default=str))


# --- Reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    next_before_id: int | None


def _filtered(filters: AuditFilter) -> Select[tuple[AuditEntry]]:
    if filters.action and filters.action not in ACTIONS:
        raise InvalidInput(f"There is no audited action {filters.action!r}.")
    query = select(AuditEntry)
    if filters.actor:
        query = query.where(AuditEntry.actor_name == filters.actor)
    if filters.action:
        query = query.where(AuditEntry.action == filters.action)
    if filters.since:
        query = query.where(AuditEntry.created_at >= datetime.combine(filters.since, time()))
    if filters.until:
        end = datetime.combine(filters.until, time()) + timedelta(days=1)
        query = query.where(AuditEntry.created_at < end)
    return query.order_by(AuditEntry.id.desc())


def list_entries(session: Session, filters: AuditFilter) -> AuditPage:
    """One page of matching entries, newest first; `next_before_id` leads to the next page."""
    query = _filtered(filters)
    if filters.before_id:
        query = query.where(AuditEntry.id < filters.before_id)
    rows = list(session.scalars(query.limit(filters.limit + 1)))
    more = len(rows) > filters.limit
    entries = rows[: filters.limit]
    return AuditPage(entries, entries[-1].id if more and entries else None)


def actor_names(session: Session) -> list[str]:
    """Everyone who appears in the log, for the page's filter."""
    return list(
        session.scalars(select(AuditEntry.actor_name).distinct().order_by(AuditEntry.actor_name))
    )


def to_csv(session: Session, filters: AuditFilter) -> str:
    """Every matching entry (the page's filters, not its page), newest first, as CSV."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for entry in session.scalars(_filtered(filters).execution_options(yield_per=1000)):
        writer.writerow(
            [
                entry.id,
                entry.created_at.isoformat(sep=" ", timespec="seconds"),
                entry.actor_name,
                entry.actor_id if entry.actor_id is not None else "",
                entry.action,
                entry.target or "",
                json.dumps(entry.before, sort_keys=True) if entry.before is not None else "",
                json.dumps(entry.after, sort_keys=True) if entry.after is not None else "",
            ]
        )
    return out.getvalue()
