"""The audit log: one row per admin action, written in the transaction of the action itself
(app/services/audit.py), so there is never an action without its entry, or the reverse."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models.base import utcnow


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_created_at", "created_at"),
        Index("ix_audit_log_actor_name", "actor_name", "id"),
        Index("ix_audit_log_action", "action", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Null for the command line and the system; the name is kept as it was at the time.
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_name: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))  # audit.ACTIONS
    # What the action was done to, as "<kind>:<id>" (user:12, project:3, job:40, ...).
    target: Mapped[str | None] = mapped_column(String(200))
    # The changed fields' values before and after, where they are cheap to keep.
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
