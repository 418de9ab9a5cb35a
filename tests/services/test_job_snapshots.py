"""Training jobs on a snapshot made on the spot: the job waits while the snapshot is written,
joins the queue when it holds the stage's files, and fails with the reason when it does not."""

from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.errors import InvalidInput
from app.models import Job, Snapshot
from app.schemas.jobs import ClaimIn
from app.schemas.snapshot import ExportRequest
from app.services import exports, jobs, leases
from tests.conftest import TEST_SECRET
from tests.factories import (
    make_base_version,
    make_demonstration,
    make_job,
    make_project,
    make_prompt,
    make_user,
    make_worker,
)


@pytest.fixture
def app_settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, secret_key=TEST_SECRET, data_dir=tmp_path / "var")


@pytest.fixture
def base(session, tmp_path: Path):
    return make_base_version(session, tmp_path / "base")


@pytest.fixture
def demonstrations(session) -> None:
    """A project whose train split holds demonstrations (SFT records) and no rankings."""
    project = make_project(session)
    author, labeler = make_user(session), make_user(session)
    for _ in range(2):
        make_prompt(session, project, author)
        make_demonstration(session, project, labeler, "An answer.")


def new_snapshot_job(session, app_settings, kind: str, base, started: list[str]) -> Job:
    params = {"snapshot": "new", "model_version_id": base.id}
    return make_job(session, kind, params, app_settings.data_dir, start_snapshot=started.append)


def test_a_new_snapshot_is_requested_with_the_job_which_waits_for_it(
    session, app_settings, base
) -> None:
    started: list[str] = []
    job = new_snapshot_job(session, app_settings, "sft", base, started)

    snapshot = session.get(Snapshot, job.params["snapshot"])
    assert job.state == "waiting" and started == [snapshot.id]
    assert snapshot.state == "queued"
    assert snapshot.request == ExportRequest().model_dump(mode="json")


def test_the_written_snapshot_lets_the_job_into_the_queue(
    session, db, app_settings, base, demonstrations
) -> None:
    started: list[str] = []
    job = new_snapshot_job(session, app_settings, "sft", base, started)

    jobs.write_snapshot(db, app_settings, started[0])

    session.refresh(job)
    assert job.state == "queued" and job.error is None
    directory = exports.snapshot_dir(app_settings, job.params["snapshot"])
    assert (directory / "sft.train.jsonl").read_text().count("\n") == 2


def test_a_snapshot_without_the_stages_records_fails_the_job_with_the_reason(
    session, db, app_settings, base, demonstrations
) -> None:
    started: list[str] = []
    job = new_snapshot_job(session, app_settings, "rm", base, started)

    jobs.write_snapshot(db, app_settings, started[0])

    session.refresh(job)
    assert job.state == "failed" and job.finished_at is not None
    assert "has no rm records in its train split (rm.train.jsonl)" in job.error


def test_a_job_on_a_snapshot_still_being_written_waits(session, app_settings, base) -> None:
    snapshot = exports.request_snapshot(session, app_settings, ExportRequest())
    job = make_job(session, "sft", {"snapshot": snapshot.id, "model_version_id": base.id},
                   app_settings.data_dir)  # fmt: skip
    assert job.state == "waiting"


def test_a_job_on_a_failed_snapshot_is_refused_and_not_created(session, app_settings, base) -> None:
    snapshot = exports.request_snapshot(session, app_settings, ExportRequest())
    snapshot.state, snapshot.error = "failed", "disk full"
    session.commit()
    with pytest.raises(InvalidInput, match=r"snapshot .* failed \(disk full\)"):
        make_job(session, "sft", {"snapshot": snapshot.id, "model_version_id": base.id},
                 app_settings.data_dir)  # fmt: skip
    assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_waiting_job_is_never_claimed(session, app_settings, base) -> None:
    new_snapshot_job(session, app_settings, "sft", base, [])
    worker, _headers = make_worker(session)
    assert leases.claim_job(session, worker, ClaimIn(), app_settings.data_dir) is None


def test_a_waiting_job_is_cancelled_at_once(session, app_settings, base) -> None:
    job = new_snapshot_job(session, app_settings, "sft", base, [])
    assert jobs.cancel_job(session, job.id).state == "cancelled"


def test_a_new_snapshot_needs_a_caller_that_writes_it(session, app_settings, base) -> None:
    with pytest.raises(InvalidInput, match="cannot make snapshots"):
        make_job(session, "sft", {"snapshot": "new", "model_version_id": base.id},
                 app_settings.data_dir)  # fmt: skip
    assert session.scalar(select(func.count()).select_from(Snapshot)) == 0
