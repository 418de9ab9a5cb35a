"""`rankery worker` against the app (through the test client): it runs SFT, sample and evaluate
jobs to their registered results, resumes a job whose earlier worker vanished from its
checkpoint, and stops a job at the heartbeat after an admin cancelled it. Then `rankery worker`
processes against a real server, the first killed with SIGKILL mid-job. Tiny models, a few
steps."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from app.models import Item, Job, JobMetric, ModelVersion
from app.models.base import utcnow
from app.schemas.jobs import BaseModelIn
from app.schemas.labeling import ComparisonIn
from app.services import evaluations, jobs, queue, registry, submissions
from benchmarks.harness import process_tree
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


class AppRestarting(Api):
    """Heartbeats that carry metrics do not reach the app, `outage` times in a row."""

    def __init__(self, api: Api, outage: int) -> None:
        super().__init__(api.http, api.headers["Authorization"].removeprefix("Bearer "))
        self.outage = outage

    def _post(self, path: str, body: dict) -> httpx.Response:
        if self.outage and body.get("metrics"):
            self.outage -= 1
            raise httpx.ConnectError("connection refused")
        return super()._post(path, body)


def test_a_worker_rides_out_an_unreachable_app_and_loses_no_metrics(
    api, session, settings, snapshot, base
):
    job = sft_job(session, settings, snapshot, base, epochs=1, max_steps=3)

    assert serve(AppRestarting(api, outage=2), once=True, lease_seconds=10, gpus=0) == 1

    session.refresh(job)
    assert (job.state, job.attempts) == ("succeeded", 1), job.error
    assert [m.step for m in job.metrics if "loss" in m.values] == [1, 2, 3]


def start_worker(api_url: str, token: str, lease_seconds: int) -> subprocess.Popen:
    rankery = Path(sys.executable).with_name("rankery")
    return subprocess.Popen(
        [str(rankery), "worker", "--api-url", api_url, "--token", token, "--once",
         "--lease-seconds", str(lease_seconds), "--poll-seconds", "0.2", "--gpus", "0"],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def kill_worker_after_checkpoint(worker: subprocess.Popen, run_dir: Path, step: int) -> list[int]:
    """SIGKILL to the worker process alone (not its job's process) once the job has saved the
    checkpoint of `step`; returns the pids of the processes the worker had started."""
    checkpoint = run_dir / "checkpoints" / f"step-{step:08d}" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while not checkpoint.exists():
        assert worker.poll() is None, "the worker ended before the checkpoint"
        assert time.monotonic() < deadline, "no checkpoint"
        time.sleep(0.01)
    children = process_tree(worker.pid)[1:]
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    return children


def wait_until_gone(pids: list[int], seconds: float = 30) -> list[int]:
    """Waits for the processes to end; kills and returns those still running after `seconds`."""
    deadline = time.monotonic() + seconds
    while (alive := [p for p in pids if Path(f"/proc/{p}").exists()]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    return alive


@pytest.fixture
def worker_token(session) -> str:
    _worker, headers = make_worker(session, "killable")
    session.commit()
    return headers["Authorization"].removeprefix("Bearer ")


def test_a_killed_workers_job_stops_with_it_then_resumes_on_the_next_into_one_model(
    live_url, worker_token, session, settings, snapshot, base
):
    job = sft_job(session, settings, snapshot, base, epochs=1, max_steps=6, save_every=2)
    session.commit()
    first = start_worker(live_url, worker_token, lease_seconds=2)
    children = kill_worker_after_checkpoint(first, settings.data_dir / "jobs" / str(job.id), 2)

    # An orphaned job process would go on writing into the run directory the next one resumes.
    assert children and wait_until_gone(children) == [], "the job's process outlived its worker"
    session.refresh(job)
    time.sleep(max(0.0, (job.lease_expires_at - utcnow()).total_seconds()) + 0.1)

    second = start_worker(live_url, worker_token, lease_seconds=30)
    assert second.wait(timeout=300) == 0

    session.commit()
    session.refresh(job)
    assert (job.state, job.attempts) == ("succeeded", 2), job.log_tail
    assert "resumed from" in job.log_tail and "step-00000002" in job.log_tail
    versions = session.scalars(select(ModelVersion).where(ModelVersion.job_id == job.id)).all()
    assert len(versions) == 1
    assert [m.step for m in job.metrics if "loss" in m.values] == [1, 2, 3, 4, 5, 6]
