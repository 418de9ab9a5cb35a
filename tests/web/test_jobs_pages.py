"""Admin pages for jobs and model versions: forms with defaults, validation, a self-polling
progress block, cancel and retry, lineage; all for admins only, with CSRF."""

from pathlib import Path

import pytest

from app.models import Job, Snapshot
from app.schemas.jobs import ClaimIn, HeartbeatIn
from app.schemas.snapshot import ExportRequest
from app.services import exports, leases
from tests.factories import (
    login,
    make_base_version,
    make_job,
    make_model_dir,
    make_snapshot_dir,
    make_user,
    make_worker,
)


@pytest.fixture
def admin_csrf(client, session) -> str:
    return login(client, make_user(session, "admin"))


def test_the_create_form_shows_each_kinds_defaults(client, admin_csrf) -> None:
    page = client.get("/admin/jobs?kind=ppo").text
    assert 'name="kl_coef" value="0.02"' in page
    assert 'name="reward_model_version_id" value=""' in page and "required" in page


def test_an_admin_queues_a_job_from_the_form(client, session, admin_csrf, tmp_path) -> None:
    base = make_base_version(session, tmp_path / "base")
    form = {
        "csrf_token": admin_csrf,
        "kind": "sft",
        "snapshot": str(make_snapshot_dir(tmp_path / "snap")),
        "model_version_id": str(base.id),
        "epochs": "2",
        "learning_rate": "1e-5",
        "gradient_checkpointing": "false",
    }
    response = client.post("/admin/jobs", data=form, follow_redirects=False)
    assert response.status_code == 303
    job = session.get(Job, int(response.headers["location"].rsplit("/", 1)[1]))
    assert job is not None and job.params["epochs"] == 2


def test_the_form_offers_a_new_snapshot_or_an_existing_one(
    client, session, settings, admin_csrf
) -> None:
    snapshot = exports.request_snapshot(session, settings, ExportRequest(), None, "snap-1")
    page = client.get("/admin/jobs?kind=sft").text
    assert '<option value="new" selected>make a new one now' in page
    assert f'<option value="{snapshot.id}" >snap-1 (queued)</option>' in page


def test_an_admin_queues_a_job_on_a_new_snapshot(client, session, admin_csrf, tmp_path) -> None:
    base = make_base_version(session, tmp_path / "base")
    form = {"csrf_token": admin_csrf, "kind": "sft", "snapshot": "new",
            "model_version_id": str(base.id)}  # fmt: skip
    response = client.post("/admin/jobs", data=form)
    assert "waits for snapshot" in response.text
    [job] = session.query(Job).all()
    assert session.get(Snapshot, job.params["snapshot"]).state == "done"
    assert job.state == "failed" and "has no sft records" in job.error  # no demonstrations yet


def test_out_of_range_hyperparameters_show_the_form_again_with_the_reason(
    client, session, admin_csrf, tmp_path
) -> None:
    base = make_base_version(session, tmp_path / "base")
    form = {"csrf_token": admin_csrf, "kind": "rm", "snapshot": "x", "model_version_id": base.id,
            "batch_size": "0"}  # fmt: skip
    response = client.post("/admin/jobs", data=form)
    assert response.status_code == 422
    assert "batch_size: Input should be greater than or equal to 1" in response.text
    assert 'name="batch_size" value="0"' in response.text
    assert session.query(Job).count() == 0


def test_forms_without_the_csrf_token_are_refused(client, admin_csrf) -> None:
    assert client.post("/admin/jobs", data={"kind": "sft"}).status_code == 403


def test_labelers_cannot_see_jobs_or_models(client, session) -> None:
    login(client, make_user(session))
    assert client.get("/admin/jobs").status_code == 403
    assert client.get("/admin/models").status_code == 403


def test_the_job_page_polls_itself_while_the_job_runs(
    client, session, admin_csrf, tmp_path: Path
) -> None:
    base = make_base_version(session, tmp_path / "base")
    params = {"snapshot": str(make_snapshot_dir(tmp_path / "snap")), "model_version_id": base.id}
    job = make_job(session, "sft", params)
    worker, _ = make_worker(session)
    spec = leases.claim_job(session, worker, ClaimIn(), tmp_path)
    assert spec is not None
    beat = HeartbeatIn(
        lease=spec.lease, step=5, total_steps=20, metrics_from=0,
        metrics=[{"step": 1, "loss": 3.0}, {"step": 5, "loss": 2.0}], log=["sft step 5/20"],
    )  # fmt: skip
    leases.heartbeat(session, job.id, worker, beat)

    block = client.get(f"/admin/jobs/{job.id}", headers={"HX-Request": "true"}).text
    assert block.lstrip().startswith('<div id="job-live"') and 'hx-trigger="every 1s"' in block
    assert '<progress id="job-progress" max="1" value="0.25"' in block
    assert "<svg" in block and "loss" in block and "sft step 5/20" in block

    client.post(f"/admin/jobs/{job.id}/cancel", data={"csrf_token": admin_csrf})
    session.refresh(job)
    assert job.cancel_requested


def test_a_finished_job_stops_polling_and_can_be_retried(
    client, session, admin_csrf, tmp_path
) -> None:
    base = make_base_version(session, tmp_path / "base")
    params = {"snapshot": str(make_snapshot_dir(tmp_path / "snap")), "model_version_id": base.id}
    job = make_job(session, "rm", params)
    client.post(f"/admin/jobs/{job.id}/cancel", data={"csrf_token": admin_csrf})
    page = client.get(f"/admin/jobs/{job.id}").text
    assert "every 1s" not in page and "Retry" in page
    response = client.post(
        f"/admin/jobs/{job.id}/retry", data={"csrf_token": admin_csrf}, follow_redirects=False
    )
    assert response.headers["location"] == f"/admin/jobs/{job.id + 1}"


def test_an_admin_registers_a_base_model_and_sees_its_lineage(
    client, session, admin_csrf, tmp_path
) -> None:
    model = make_model_dir(tmp_path / "gpt-tiny")
    form = {"csrf_token": admin_csrf, "name": "gpt-tiny", "path": str(model)}
    assert client.post("/admin/models", data=form, follow_redirects=False).status_code == 303
    missing = {"csrf_token": admin_csrf, "name": "ghost", "path": str(tmp_path / "nothing")}
    response = client.post("/admin/models", data=missing)
    assert response.status_code == 422 and "no config.json" in response.text
    assert "gpt-tiny (v1)" in client.get("/admin/models").text


def test_an_admin_creates_a_worker_token_on_the_jobs_page(client, admin_csrf) -> None:
    page = client.post("/admin/workers", data={"csrf_token": admin_csrf, "name": "gpu-box"}).text
    assert 'id="new-token">rk_' in page and "gpu-box" in page


def test_a_waiting_jobs_page_names_its_snapshot_and_polls(
    client, session, settings, admin_csrf, tmp_path
) -> None:
    base = make_base_version(session, tmp_path / "base")
    snapshot = exports.request_snapshot(session, settings, ExportRequest(), None, "snap-2")
    job = make_job(session, "sft", {"snapshot": snapshot.id, "model_version_id": base.id},
                   settings.data_dir)  # fmt: skip
    page = client.get(f"/admin/jobs/{job.id}").text
    assert 'waiting</strong> for snapshot <a href="/admin/exports/snap-2">' in page
    assert 'hx-trigger="every 1s"' in page
