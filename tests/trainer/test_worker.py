"""`rankery worker` against the app (through the test client): it runs SFT, sample and evaluate
jobs to their registered results, resumes a job whose earlier worker vanished from its
checkpoint, and stops a job at the heartbeat after an admin cancelled it. Tiny models, a few
steps."""

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app.models import Item, Job, JobMetric, ModelVersion
from app.schemas.jobs import BaseModelIn
from app.schemas.labeling import ComparisonIn
from app.services import evaluations, jobs, queue, registry, submissions
from tests.factories import (
    make_evaluation,
    make_job,
    make_policy_version,
    make_project,
    make_prompt,
    make_test_project,
    make_user,
    make_worker,
)
from trainer.worker import Api, command, serve

FAST_SFT = {"batch_size": 8, "learning_rate": 1e-3, "dropout": 0.0, "log_every": 1}


@pytest.fixture
def database_url(sqlite_template: Path, tmp_path: Path) -> str:
    """SQLite only: these tests start trainer processes; the leases are tested on both."""
    path = tmp_path / "rankery.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def api(client, session) -> Api:
    _worker, headers = make_worker(session)
    return Api(client, headers["Authorization"].removeprefix("Bearer "))


@pytest.fixture
def base(session, tiny_model: Path) -> ModelVersion:
    return registry.register_base(session, BaseModelIn(name="tiny", path=str(tiny_model)), None)


def sft_job(session, settings, snapshot: Path, base: ModelVersion, **options) -> Job:
    params = {"snapshot": str(snapshot), "model_version_id": base.id, **FAST_SFT, **options}
    return make_job(session, "sft", params, data_dir=settings.data_dir)


def test_a_worker_runs_an_sft_job_to_a_registered_model(api, session, settings, snapshot, base):
    job = sft_job(session, settings, snapshot, base, epochs=1, max_steps=3)

    assert serve(api, once=True, lease_seconds=30, gpus=0) == 1

    session.refresh(job)
    assert job.state == "succeeded", job.error
    assert (job.step, job.total_steps, job.progress) == (3, 3, 1.0)
    losses = session.scalars(select(JobMetric).where(JobMetric.job_id == job.id)).all()
    assert [m.step for m in losses if "loss" in m.values] == [1, 2, 3]
    version = session.scalar(select(ModelVersion).where(ModelVersion.job_id == job.id))
    assert version.kind == "policy" and version.parent_ids == [base.id]
    assert (Path(version.artifact_path) / "config.json").is_file()
    assert "loss" in version.metrics


def test_a_sample_job_puts_k_completions_per_prompt_into_the_ranking_queue(
    api, session, settings, base
):
    project = make_project(session)
    author = make_user(session)
    prompts = [make_prompt(session, project, author) for _ in range(2)]
    params = {
        "project_id": project.id,
        "prompt_ids": [p.id for p in prompts],
        "model_version_ids": [base.id],
        "k": 4,
        "max_new_tokens": 4,
    }
    job = make_job(session, "sample", params, data_dir=settings.data_dir)

    serve(api, once=True, lease_seconds=30, gpus=0)

    session.refresh(job)
    assert job.state == "succeeded", job.error
    items = session.scalars(select(Item).where(Item.kind == "ranking")).all()
    assert sorted(i.prompt_id for i in items) == sorted(p.id for p in prompts)
    for item in items:
        assert len(item.completions) == 4
        assert all(c.text and c.model_name == f"tiny (v{base.id})" for c in item.completions)
        assert item.completions[0].sampling["job_id"] == job.id


def test_an_evaluate_job_turns_two_versions_answers_into_comparisons_and_a_win_rate(
    api, session, settings, tiny_model, tiny_llama, tmp_path
):
    project = make_test_project(session, prompts=2)
    a = make_policy_version(session, tmp_path / "a", model=tiny_model)
    b = make_policy_version(session, tmp_path / "b", model=tiny_llama)
    job = make_evaluation(session, project, a, b, max_new_tokens=4)

    assert serve(api, once=True, lease_seconds=30, gpus=0) == 1

    session.refresh(job)
    assert job.state == "succeeded", job.error
    items = session.scalars(select(Item).where(Item.kind == "comparison")).all()
    assert sorted(i.prompt_id for i in items) == job.params["prompt_ids"]
    for item in items:
        assert [c.model_version_id for c in item.completions] == [a.id, b.id]
        assert all(c.text for c in item.completions)
    labeler = make_user(session)
    task = queue.next_task(session, project, labeler, "comparison")
    submissions.submit_comparison(session, task.id, labeler, ComparisonIn(choice="a"))
    result = evaluations.job_evaluation(session, job).result
    assert result.comparisons == 1 and result.rate in (0.0, 1.0)


def test_a_job_whose_worker_vanished_resumes_from_its_checkpoint(
    api, session, settings, snapshot, base
):
    job = sft_job(session, settings, snapshot, base, epochs=1, max_steps=4, save_every=1)
    spec = api.claim(lease_seconds=1, max_gpus=1)
    assert spec is not None
    # The first worker gets two steps (and a checkpoint) done, then disappears.
    first = subprocess.run(
        [*command(spec, 0), "--set", "stop_after_steps=2"], capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    time.sleep(1.1)  # its lease runs out

    serve(api, once=True, lease_seconds=30, gpus=0)

    session.refresh(job)
    assert (job.state, job.attempts) == ("succeeded", 2)
    assert "resumed from" in job.log_tail
    steps = [m.step for m in job.metrics if "loss" in m.values]
    assert steps == [1, 2, 3, 4]  # the first attempt's lines, then the resumed ones, once each


def test_cancel_stops_the_running_job_at_the_next_heartbeat(
    api, session, db, settings, snapshot, base
):
    job = sft_job(session, settings, snapshot, base, epochs=200)
    worker = threading.Thread(target=serve, args=(api, True, 0.1, 2, 0))
    worker.start()
    deadline = time.monotonic() + 120
    while session.get(Job, job.id, populate_existing=True).state != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
        session.commit()

    with db.session() as admin_session:
        jobs.cancel_job(admin_session, job.id)
    worker.join(timeout=120)

    session.commit()
    session.refresh(job)
    assert not worker.is_alive() and job.state == "cancelled"
