"""Workers claim jobs with leases: one job, one worker; expired leases return jobs to the queue;
reports from a worker that does not hold the job change nothing."""

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.db import Database
from app.errors import Conflict
from app.models import Job, JobMetric
from app.models.base import utcnow
from app.schemas.jobs import ClaimIn, FinishIn, HeartbeatIn
from app.services import jobs, leases
from tests.factories import make_base_version, make_job, make_snapshot_dir, make_worker


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture
def sft_params(session, tmp_path: Path) -> dict:
    base = make_base_version(session, tmp_path / "base")
    return {"snapshot": str(make_snapshot_dir(tmp_path / "snap")), "model_version_id": base.id}


def claim(session, worker, data_dir, seconds: int = 60, now=None):
    return leases.claim_job(session, worker, ClaimIn(lease_seconds=seconds), data_dir, now)


def test_a_worker_claims_the_oldest_queued_job_with_a_lease(session, data_dir, sft_params):
    first = make_job(session, "sft", sft_params)
    make_job(session, "sft", sft_params)
    worker, _ = make_worker(session)

    spec = claim(session, worker, data_dir)

    assert spec is not None and spec.job_id == first.id and spec.attempt == 1
    assert spec.model and spec.data and spec.run_dir.endswith(f"jobs/{first.id}")
    session.refresh(first)
    assert (first.state, first.worker_id, first.lease_id) == ("running", worker.id, spec.lease)


def test_claim_returns_none_when_no_job_waits(session, data_dir):
    worker, _ = make_worker(session)
    assert claim(session, worker, data_dir) is None


def test_concurrent_claims_never_give_a_job_to_two_workers(db: Database, data_dir, sft_params):
    with db.session() as s:
        for _ in range(6):
            make_job(s, "sft", sft_params)
        worker_ids = [make_worker(s, f"w{i}")[0].id for i in range(8)]
    claimed: list[int] = []
    barrier = threading.Barrier(len(worker_ids))

    def run(worker_id: int) -> None:
        barrier.wait()
        while True:
            with db.session() as s:
                worker = s.get(leases.Worker, worker_id)
                spec = leases.claim_job(s, worker, ClaimIn(), data_dir)
            if spec is None:
                return
            claimed.append(spec.job_id)

    threads = [threading.Thread(target=run, args=(w,)) for w in worker_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 6


def test_an_expired_lease_returns_the_job_to_the_queue_for_the_next_worker(
    session, data_dir, sft_params
):
    job = make_job(session, "sft", sft_params)
    crashed, _ = make_worker(session, "crashed")
    next_worker, _ = make_worker(session, "next")
    first = claim(session, crashed, data_dir, seconds=30)
    assert first is not None
    leases.heartbeat(session, job.id, crashed, HeartbeatIn(lease=first.lease, step=40))

    later = utcnow() + timedelta(seconds=31)
    second = claim(session, next_worker, data_dir, now=later)

    assert second is not None and second.job_id == job.id and second.attempt == 2
    assert second.run_dir == first.run_dir  # the same run directory: it resumes from there
    session.refresh(job)
    assert job.start_step == 40 and "lease expired" in job.log_tail
    with pytest.raises(Conflict, match="does not hold job"):
        leases.heartbeat(session, job.id, crashed, HeartbeatIn(lease=first.lease))


def test_a_lease_that_ran_out_cannot_be_extended(session, data_dir, sft_params):
    job = make_job(session, "sft", sft_params)
    worker, _ = make_worker(session)
    spec = claim(session, worker, data_dir, seconds=5)
    assert spec is not None
    late = utcnow() + timedelta(seconds=6)
    with pytest.raises(Conflict, match="ran out"):
        leases.heartbeat(session, job.id, worker, HeartbeatIn(lease=spec.lease, step=3), late)
    session.refresh(job)
    assert job.step == 0


def test_a_reporter_without_the_lease_gets_a_conflict_and_changes_nothing(
    session, data_dir, sft_params
):
    job = make_job(session, "sft", sft_params)
    holder, _ = make_worker(session, "holder")
    other, _ = make_worker(session, "other")
    spec = claim(session, holder, data_dir)
    assert spec is not None

    with pytest.raises(Conflict, match="does not hold job"):
        leases.heartbeat(session, job.id, other, HeartbeatIn(lease=spec.lease, step=9))
    with pytest.raises(Conflict, match="does not hold job"):
        leases.finish_job(
            session, job.id, holder, FinishIn(lease="wrong", outcome="failed"), data_dir
        )
    session.refresh(job)
    assert (job.state, job.step, job.error) == ("running", 0, None)


def test_heartbeats_store_progress_metrics_and_a_bounded_log_tail(session, data_dir, sft_params):
    job = make_job(session, "sft", sft_params)
    worker, _ = make_worker(session)
    spec = claim(session, worker, data_dir)
    assert spec is not None
    lines = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}, {"step": 3, "loss": 1.2}]
    beat = HeartbeatIn(
        lease=spec.lease, step=3, total_steps=10, metrics_from=0, metrics=lines, log=["a"] * 300
    )
    leases.heartbeat(session, job.id, worker, beat)
    # A resumed run re-sends its metrics from the checkpoint on: they replace, not duplicate.
    again = HeartbeatIn(lease=spec.lease, metrics_from=1, metrics=[{"step": 2, "loss": 1.4}])
    leases.heartbeat(session, job.id, worker, again)

    session.refresh(job)
    assert job.progress == pytest.approx(0.3)
    assert len(job.log_tail.splitlines()) == leases.LOG_TAIL_LINES
    stored = session.scalars(select(JobMetric).where(JobMetric.job_id == job.id)).all()
    assert [(m.seq, m.values["loss"]) for m in stored] == [(0, 2.0), (1, 1.4)]


def test_cancel_reaches_the_worker_at_its_next_heartbeat(session, data_dir, sft_params):
    job = make_job(session, "sft", sft_params)
    worker, _ = make_worker(session)
    spec = claim(session, worker, data_dir)
    assert spec is not None

    jobs.cancel_job(session, job.id)
    reply = leases.heartbeat(session, job.id, worker, HeartbeatIn(lease=spec.lease))
    assert reply.cancel_requested
    leases.finish_job(
        session, job.id, worker, FinishIn(lease=spec.lease, outcome="cancelled"), data_dir
    )
    session.refresh(job)
    assert job.state == "cancelled"


def test_a_cancelled_job_whose_worker_vanished_ends_instead_of_requeueing(
    session, data_dir, sft_params
):
    job = make_job(session, "sft", sft_params)
    worker, _ = make_worker(session)
    assert claim(session, worker, data_dir, seconds=5) is not None
    jobs.cancel_job(session, job.id)

    assert claim(session, worker, data_dir, now=utcnow() + timedelta(seconds=10)) is None
    session.refresh(job)
    assert job.state == "cancelled"


def test_a_failure_keeps_the_workers_error(session, data_dir, sft_params):
    job = make_job(session, "sft", sft_params)
    worker, _ = make_worker(session)
    spec = claim(session, worker, data_dir)
    assert spec is not None
    finish = FinishIn(lease=spec.lease, outcome="failed", error="CUDA out of memory")
    leases.finish_job(session, job.id, worker, finish, data_dir)
    session.refresh(job)
    assert (job.state, job.error, job.lease_id) == ("failed", "CUDA out of memory", None)


def test_claims_respect_kinds_and_the_gpu_hint(session, data_dir, sft_params):
    make_job(session, "sft", sft_params, gpus=4)
    worker, _ = make_worker(session)
    assert leases.claim_job(session, worker, ClaimIn(kinds=["rm"]), data_dir) is None
    assert leases.claim_job(session, worker, ClaimIn(max_gpus=1), data_dir) is None
    assert leases.claim_job(session, worker, ClaimIn(max_gpus=4), data_dir) is not None
    assert session.scalar(select(Job.state)) == "running"
