"""Training and sampling jobs, the workers that run them, and the models they produce.

A *job* waits in the queue until a *worker* claims it with a lease; the worker heartbeats to
keep the lease and reports progress, metrics and log lines on the way. A job whose lease runs
out goes back to the queue and the next worker resumes it from its last checkpoint. Every
trained (or registered) model is a *model version*, linked to its parents and to its job.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base
from app.models.base import utcnow

JOB_KINDS = ("sample", "sft", "rm", "ppo", "evaluate", "suggest")
# "waiting": for the export snapshot it trains on to be written; then "queued" (or "failed").
JOB_STATES = ("waiting", "queued", "running", "succeeded", "failed", "cancelled")
FINISHED_STATES = ("succeeded", "failed", "cancelled")
MODEL_KINDS = ("base", "policy", "reward")


class Worker(Base):
    """A machine allowed to run jobs, known by a bearer token (only its SHA-256 is stored).
    Worker tokens are valid on the worker endpoints and nowhere else."""

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_lease", "state", "lease_expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(10), default="queued")
    # Validated per kind by app.schemas.jobs (hyperparameters, data, model versions).
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    gpus: Mapped[int] = mapped_column(default=1)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The lease: who runs the job and until when. Every claim draws a new lease id, and every
    # report must name it, so a worker whose lease was taken over can change nothing.
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id"))
    lease_id: Mapped[str | None] = mapped_column(String(32))
    lease_expires_at: Mapped[datetime | None]
    lease_seconds: Mapped[int] = mapped_column(default=60)
    attempts: Mapped[int] = mapped_column(default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # Progress of the current attempt; it resumes at the step of the last checkpoint.
    started_at: Mapped[datetime | None]
    start_step: Mapped[int] = mapped_column(default=0)
    step: Mapped[int] = mapped_column(default=0)
    total_steps: Mapped[int | None]
    last_report_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    log_tail: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    worker: Mapped[Worker | None] = relationship()
    metrics: Mapped[list["JobMetric"]] = relationship(
        order_by="JobMetric.seq", cascade="all, delete-orphan"
    )

    @property
    def progress(self) -> float | None:
        if self.state == "succeeded":
            return 1.0
        if not self.total_steps:
            return None
        return min(1.0, self.step / self.total_steps)


class JobMetric(Base):
    """One line of the run's metrics.jsonl, numbered by its position in that file (`seq`),
    so a resumed run's lines replace the ones logged after its checkpoint."""

    __tablename__ = "job_metrics"
    __table_args__ = (UniqueConstraint("job_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: Mapped[int]
    step: Mapped[int]
    values: Mapped[dict[str, Any]] = mapped_column(JSON)


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(8))  # base | policy | reward
    # Lineage: base -> SFT policy -> reward model -> PPO policy (a PPO policy has two parents).
    parent_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    snapshot: Mapped[str | None] = mapped_column(String(1000))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # A Hugging Face model directory on the storage the app and its workers share.
    artifact_path: Mapped[str] = mapped_column(String(1000))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
