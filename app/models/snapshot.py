from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models.base import utcnow

SNAPSHOT_STATES = ("queued", "running", "done", "failed")


class Snapshot(Base):
    """An export snapshot: its id names its directory, DATA_DIR/exports/<id>/."""

    __tablename__ = "snapshots"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Null when made from the command line.
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(10), default="queued")
    # The ExportRequest it was made from (filters, formats, pairs view).
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Set while it runs, every few seconds: a running snapshot whose heartbeat stops was
    # abandoned (server restart, crash) and is failed (app/services/exports.py).
    heartbeat_at: Mapped[datetime | None]
    records_done: Mapped[int] = mapped_column(default=0)
    records_total: Mapped[int | None]
    counts: Mapped[dict[str, int] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
