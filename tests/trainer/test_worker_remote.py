"""`rankery worker` without the app's disk (`artifacts="http"`): it downloads the job's
snapshot and model through the API, trains in its own work directory and uploads the model,
which the app registers from its own run directory. And the worker answers labelers'
dialogue suggestions in its own process. Tiny models on CPU, a few steps."""

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from app.models import Job, ModelVersion
from app.models.base import utcnow
from app.schemas.jobs import BaseModelIn
from app.schemas.labeling import SuggestIn
from app.services import queue, registry, suggestions
from tests.factories import make_job, make_project, make_prompt, make_user, make_worker
from trainer.worker import Api, serve, shares_storage


@pytest.fixture
def database_url(sqlite_template: Path, tmp_path: Path) -> str:
    """SQLite only: these tests start trainer processes; the API is tested on both."""
    path = tmp_path / "rankery.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def worker_and_api(client, session):
    worker, headers = make_worker(session)
    return worker, Api(client, headers["Authorization"].removeprefix("Bearer "))


@pytest.fixture
def base(session, tiny_model: Path) -> ModelVersion:
    return registry.register_base(session, BaseModelIn(name="tiny", path=str(tiny_model)), None)


def test_a_worker_without_the_apps_disk_moves_the_artifacts_through_the_api(
    worker_and_api, session, settings, snapshot, base, tmp_path
) -> None:
    _worker, api = worker_and_api
    params = {"snapshot": str(snapshot), "model_version_id": base.id, "batch_size": 8,
              "learning_rate": 1e-3, "dropout": 0.0, "epochs": 1, "max_steps": 2}  # fmt: skip
    job = make_job(session, "sft", params, data_dir=settings.data_dir)
    elsewhere = tmp_path / "worker-machine"

    serve(api, once=True, lease_seconds=30, gpus=0, work_dir=elsewhere, artifacts="http")

    session.refresh(job)
    assert job.state == "succeeded", job.error
    version = session.scalar(select(ModelVersion).where(ModelVersion.job_id == job.id))
    app_run_dir = (settings.data_dir / "jobs" / str(job.id)).resolve()
    assert version.artifact_path == str(app_run_dir / "model")
    assert (app_run_dir / "model" / "config.json").is_file()
    assert sorted(p.name for p in app_run_dir.iterdir()) == ["model"]  # trained elsewhere
    [storage] = [p for p in elsewhere.iterdir()]
    assert (storage / "models" / str(base.id) / "config.json").is_file()
    [downloaded] = list((storage / "snapshots").iterdir())
    assert (downloaded / "sft.train.jsonl").read_bytes() == (
        snapshot / "sft.train.jsonl"
    ).read_bytes()
    assert (storage / "jobs" / str(job.id) / "metrics.jsonl").is_file()


def test_a_worker_knows_the_apps_disk_by_its_storage_id(tmp_path: Path) -> None:
    (tmp_path / ".storage-id").write_text("abc\n")
    assert shares_storage({"storage": {"path": str(tmp_path), "storage_id": "abc"}})
    assert not shares_storage({"storage": {"path": str(tmp_path), "storage_id": "xyz"}})
    assert not shares_storage({"storage": {"path": str(tmp_path / "no"), "storage_id": "abc"}})


def test_a_worker_writes_a_labelers_dialogue_suggestion(
    worker_and_api, session, settings, base
) -> None:
    worker, api = worker_and_api
    worker.last_seen_at = utcnow()
    project = make_project(session)
    suggestions.choose_model(session, project.id, base.id)
    make_prompt(session, project, make_user(session))
    labeler = make_user(session)
    task = queue.next_task(session, project, labeler, "demonstration")
    data = SuggestIn(turns=[{"role": "assistant", "content": ""}], turn=0)
    job = suggestions.request_suggestion(session, task.id, labeler, data)

    serve(api, once=True, lease_seconds=30, gpus=0, work_dir=settings.data_dir / "w")

    session.refresh(job)
    assert job.state == "succeeded", job.error
    assert isinstance(job.result["text"], str)
    shown = suggestions.get_suggestion(session, task.id, job.id, labeler)
    assert (shown.state, shown.text) == ("ready", job.result["text"])
    assert session.get(Job, job.id).kind == "suggest"
