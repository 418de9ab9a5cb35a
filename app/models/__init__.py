"""SQLAlchemy models. Import from here so Alembic sees every table."""

from app.db import Base
from app.models.audit import AuditEntry
from app.models.jobs import Job, JobMetric, ModelVersion, Worker
from app.models.project import Project, SplitAssignment
from app.models.screening import GoldAnswer, ScreeningAttempt, ScreeningTest
from app.models.snapshot import Snapshot
from app.models.user import ApiToken, LoginThrottle, User
from app.models.work import (
    Comparison,
    Completion,
    Demonstration,
    Item,
    Prompt,
    Ranking,
    RankingEntry,
    Slot,
    Task,
)

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "Comparison",
    "Completion",
    "Demonstration",
    "GoldAnswer",
    "Item",
    "Job",
    "JobMetric",
    "LoginThrottle",
    "ModelVersion",
    "Project",
    "Prompt",
    "Ranking",
    "RankingEntry",
    "ScreeningAttempt",
    "ScreeningTest",
    "Slot",
    "Snapshot",
    "SplitAssignment",
    "Task",
    "User",
    "Worker",
]
