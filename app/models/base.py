from datetime import UTC, datetime


def utcnow() -> datetime:
    """Naive UTC: SQLite keeps no time zone, so every timestamp is stored and compared as UTC."""
    return datetime.now(UTC).replace(tzinfo=None)
