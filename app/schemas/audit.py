"""Shapes for the audit log: which entries to show, and an entry as the API returns it."""

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas.labeling import Strict
from app.schemas.times import UtcDateTime

PAGE_SIZE = 50


class AuditFilter(Strict):
    """Who did it (a username, or "command line"), what (an action), and when (inclusive
    dates, UTC); empty means everything. `before_id` pages back from an entry."""

    actor: str | None = Field(default=None, max_length=64)
    action: str | None = Field(default=None, max_length=40)
    since: date | None = None
    until: date | None = None
    before_id: int | None = Field(default=None, ge=1)
    limit: int = Field(default=PAGE_SIZE, ge=1, le=1000)

    @model_validator(mode="after")
    def _window(self) -> "AuditFilter":
        if self.since and self.until and self.since > self.until:
            raise ValueError("the window's start (since) must not be after its end (until)")
        return self


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: UtcDateTime
    actor_id: int | None
    actor_name: str
    action: str
    target: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditPageOut(BaseModel):
    entries: list[AuditEntryOut]
    next_before_id: int | None = Field(
        description="Pass as before_id for the next (older) page; null on the last page"
    )
