from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, String, literal_column


def utcnow() -> datetime:
    """Naive UTC: SQLite keeps no time zone, so every timestamp is stored and compared as UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def constant(value: str | int) -> ColumnElement[Any]:
    """A constant written into the SQL text instead of sent as a parameter. PostgreSQL then
    plans a prepared statement once per connection: with `state = $1` it cannot know that the
    partial index on open slots applies, so it would plan the query afresh on every call."""
    if isinstance(value, int):
        return literal_column(str(int(value)), Integer())
    return literal_column("'" + value.replace("'", "''") + "'", String())
