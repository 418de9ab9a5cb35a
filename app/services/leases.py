"""The worker side of jobs: claim with a lease, heartbeat (progress, metrics, log lines, cancel
requests), finish. Every claim draws a fresh lease id and every report must name it, so a
worker whose lease ran out and was taken over can change nothing (409).

Claims never give one job to two workers: the queued job is picked with FOR UPDATE SKIP
LOCKED on PostgreSQL (concurrent claimers take different rows) and switched to running by a
compare-and-set on its state; SQLite's single writer serializes claims."""

import secrets
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import case, delete, select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.models import Job, JobMetric, ModelVersion, Prompt, Worker
from app.models.base import utcnow
from app.schemas.jobs import ClaimIn, FinishIn, HeartbeatIn, JobSpec
from app.services import artifacts, evaluations, registry, sampling, suggestions
from app.services.jobs import resolve_snapshot, settle_waiting

LOG_TAIL_LINES = 200
LAST_SEEN_EVERY = timedelta(seconds=10)  # a worker row is written at most this often


def requeue_expired(session: Session, now: datetime) -> int:
    """Jobs whose lease ran out go back to the queue (or end, when a cancel was asked for).
    Rows another transaction holds are skipped: their holder is reporting right now."""
    expired = list(
        session.scalars(
            select(Job.id)
            .where(Job.state == "running", Job.lease_expires_at < now)
            .order_by(Job.id)
            .with_for_update(skip_locked=True)
        )
    )
    if not expired:
        return 0
    note = f"[{now:%Y-%m-%d %H:%M:%S}] lease expired; back in the queue\n"
    ended = {"lease_id": None, "worker_id": None, "lease_expires_at": None}
    session.execute(
        update(Job)
        .where(Job.id.in_(expired), Job.cancel_requested.is_(True))
        .values(state="cancelled", finished_at=now, **ended)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Job)
        .where(Job.id.in_(expired), Job.state == "running")
        .values(state="queued", log_tail=Job.log_tail + note, **ended)
        .execution_options(synchronize_session=False)
    )
    return len(expired)


def claim_job(
    session: Session, worker: Worker, data: ClaimIn, data_dir: Path, now: datetime | None = None
) -> JobSpec | None:
    """The oldest queued job of the wanted kinds, leased to this worker; None when none waits.
    Labelers' suggestions go first: someone is waiting for them."""
    now = now or utcnow()
    requeue_expired(session, now)
    settle_waiting(session, data_dir, now)
    suggestions.expire_unclaimed(session, now)
    if worker.last_seen_at is None or now - worker.last_seen_at > LAST_SEEN_EVERY:
        worker.last_seen_at = now
    job_id = session.scalar(
        select(Job.id)
        .where(Job.state == "queued", Job.kind.in_(data.kinds), Job.gpus <= data.max_gpus)
        .order_by(case((Job.kind == "suggest", 0), else_=1), Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    lease = secrets.token_hex(16)
    claimed = (
        job_id is not None
        and session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == "queued")  # compare-and-set
            .values(
                state="running",
                worker_id=worker.id,
                lease_id=lease,
                lease_seconds=data.lease_seconds,
                lease_expires_at=now + timedelta(seconds=data.lease_seconds),
                attempts=Job.attempts + 1,
                started_at=now,
                start_step=Job.step,
                last_report_at=now,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )
    if not claimed:
        session.commit()
        return None
    job = session.get(Job, job_id, populate_existing=True)
    assert job is not None
    spec = _spec(session, job, data_dir)
    session.commit()
    return spec


def heartbeat(
    session: Session, job_id: int, worker: Worker, data: HeartbeatIn, now: datetime | None = None
) -> Job:
    """Extends the lease and stores what the worker sent; answers whether to cancel."""
    now = now or utcnow()
    job = held_job(session, job_id, worker, data.lease, now)
    job.lease_expires_at = now + timedelta(seconds=job.lease_seconds)
    job.last_report_at = now
    if data.step is not None:
        job.step = data.step
    if data.total_steps is not None:
        job.total_steps = data.total_steps
    if data.metrics_from is not None:
        session.execute(
            delete(JobMetric).where(JobMetric.job_id == job.id, JobMetric.seq >= data.metrics_from)
        )
        for i, values in enumerate(data.metrics):
            step = values.get("step")
            session.add(
                JobMetric(
                    job_id=job.id,
                    seq=data.metrics_from + i,
                    step=step if isinstance(step, int) else 0,
                    values=values,
                )
            )
    if data.log:
        lines = (job.log_tail + "".join(line.rstrip("\n") + "\n" for line in data.log)).splitlines()
        job.log_tail = "".join(line + "\n" for line in lines[-LOG_TAIL_LINES:])
    session.commit()
    return job


def finish_job(
    session: Session,
    job_id: int,
    worker: Worker,
    data: FinishIn,
    data_dir: Path,
    now: datetime | None = None,
) -> Job:
    """Ends the job. Success registers its result (a model version, completions in the
    ranking queue, or comparison tasks) in the same commit; a result that does not check out
    changes nothing."""
    now = now or utcnow()
    job = held_job(session, job_id, worker, data.lease, now)
    result = data.result or None
    if data.outcome == "succeeded":
        if job.kind == "sample":
            sampling.add_samples(session, job, data.result)
        elif job.kind == "evaluate":
            evaluations.add_comparisons(session, job, data.result)
        elif job.kind == "suggest":
            result = suggestions.checked_result(data.result)
        else:
            registry.add_trained_version(session, job, data.result, data_dir)
        if job.total_steps:
            job.step = job.total_steps
    elif data.outcome == "failed":
        job.error = data.error or "The worker reported a failure without a message."
    job.state, job.finished_at, job.result = data.outcome, now, result
    job.lease_id, job.lease_expires_at = None, None
    session.commit()
    return job


def held_job(
    session: Session,
    job_id: int,
    worker: Worker,
    lease: str,
    now: datetime | None = None,
    lock: bool = True,
) -> Job:
    """The job (locked, unless only read) when this worker holds it under this lease and the
    lease still runs; otherwise a 409 that tells the worker to stop."""
    now = now or utcnow()
    job = session.get(Job, job_id, with_for_update=lock, populate_existing=True)
    if job is None:
        raise NotFound(f"There is no job {job_id}.")
    if job.state != "running" or job.lease_id != lease or job.worker_id != worker.id:
        where = f"it is {job.state}" if job.state != "running" else "another lease holds it"
        raise Conflict(
            f"This worker does not hold job {job_id} ({where}): stop working on it. "
            "Nothing was changed."
        )
    assert job.lease_expires_at is not None
    if job.lease_expires_at < now:
        raise Conflict(
            f"The lease on job {job_id} ran out at {job.lease_expires_at:%H:%M:%S} UTC; the job "
            "goes back to the queue. Stop working on it. Nothing was changed."
        )
    return job


def _spec(session: Session, job: Job, data_dir: Path) -> JobSpec:
    params = job.params
    spec = JobSpec(
        job_id=job.id,
        kind=job.kind,
        lease=job.lease_id or "",
        lease_expires_at=job.lease_expires_at or utcnow(),
        attempt=job.attempts,
        gpus=job.gpus,
        params=params,
        run_dir=str(artifacts.run_dir(data_dir, job.id)),
        storage=artifacts.storage(data_dir),
    )
    if job.kind == "suggest":
        spec.model = _artifact(session, params["model_version_id"])
        spec.model_version_id = params["model_version_id"]
        return spec
    if job.kind in ("sample", "evaluate"):
        prompts = session.scalars(select(Prompt).where(Prompt.id.in_(params["prompt_ids"])))
        by_id = {p.id: p for p in prompts}
        spec.prompts = [
            {"id": pid, "text": by_id[pid].render()} for pid in params["prompt_ids"] if pid in by_id
        ]
        versions = (
            params["model_version_ids"]
            if job.kind == "sample"
            else [params["model_version_a_id"], params["model_version_b_id"]]
        )
        spec.models = {str(v): _artifact(session, v) for v in dict.fromkeys(versions)}
        return spec
    spec.data = str(resolve_snapshot(params["snapshot"], data_dir))
    spec.model = _artifact(session, params["model_version_id"])
    spec.model_version_id = params["model_version_id"]
    if params.get("reward_model_version_id") is not None:
        spec.reward_model = _artifact(session, params["reward_model_version_id"])
        spec.reward_model_version_id = params["reward_model_version_id"]
    return spec


def _artifact(session: Session, version_id: int) -> str:
    version = session.get(ModelVersion, version_id)
    if version is None:  # checked when the job was created; versions are never deleted
        raise NotFound(f"There is no model version {version_id}.")
    return version.artifact_path
