"""/api/v1 for jobs: admins create and watch jobs; worker tokens open the worker endpoints and
nothing else; a worker reporting for a job it does not hold gets a 409."""

from pathlib import Path

import pytest

from tests.factories import (
    bearer,
    make_base_version,
    make_model_dir,
    make_snapshot_dir,
    make_user,
    make_worker,
)


@pytest.fixture
def admin(session):
    return bearer(session, make_user(session, "admin"))


@pytest.fixture
def sft_params(session, tmp_path: Path) -> dict:
    base = make_base_version(session, tmp_path / "base")
    return {"snapshot": str(make_snapshot_dir(tmp_path / "snap")), "model_version_id": base.id}


def test_an_admin_creates_a_job_and_a_worker_runs_it_to_a_model_version(
    client, session, admin, sft_params, tmp_path
) -> None:
    created = client.post("/api/v1/jobs", json={"kind": "sft", "params": sft_params}, headers=admin)
    assert created.status_code == 201, created.text
    _worker, worker = make_worker(session)

    spec = client.post("/api/v1/worker/claim", json={}, headers=worker).json()
    beat = client.post(
        f"/api/v1/worker/jobs/{spec['job_id']}/heartbeat",
        json={
            "lease": spec["lease"],
            "step": 2,
            "total_steps": 4,
            "metrics_from": 0,
            "metrics": [{"step": 2, "loss": 0.5}],
            "log": ["sft step 2/4"],
        },
        headers=worker,
    )
    assert beat.json()["cancel_requested"] is False
    model = make_model_dir(Path(spec["run_dir"]) / "model")
    done = client.post(
        f"/api/v1/worker/jobs/{spec['job_id']}/finish",
        json={
            "lease": spec["lease"],
            "outcome": "succeeded",
            "result": {"artifact_path": str(model), "metrics": {"loss": 0.4}},
        },
        headers=worker,
    )
    assert done.json()["state"] == "succeeded"

    job = client.get(f"/api/v1/jobs/{spec['job_id']}", headers=admin).json()
    assert job["progress"] == 1.0 and job["metrics"][0]["values"]["loss"] == 0.5
    versions = client.get("/api/v1/model-versions", headers=admin).json()
    trained = next(v for v in versions if v["job_id"] == spec["job_id"])
    assert trained["kind"] == "policy" and trained["parent_ids"] == [sft_params["model_version_id"]]
    assert trained["metrics"] == {"loss": 0.4}


def test_a_result_whose_model_directory_is_incomplete_registers_nothing(
    client, session, admin, sft_params, tmp_path
) -> None:
    client.post("/api/v1/jobs", json={"kind": "sft", "params": sft_params}, headers=admin)
    _worker, worker = make_worker(session)
    spec = client.post("/api/v1/worker/claim", json={}, headers=worker).json()
    half = Path(spec["run_dir"]) / "half-written"
    half.mkdir(parents=True)
    done = client.post(
        f"/api/v1/worker/jobs/{spec['job_id']}/finish",
        json={
            "lease": spec["lease"],
            "outcome": "succeeded",
            "result": {"artifact_path": str(half)},
        },
        headers=worker,
    )
    assert done.status_code == 422 and "no config.json" in done.json()["detail"]
    job = client.get(f"/api/v1/jobs/{spec['job_id']}", headers=admin).json()
    assert job["state"] == "running"
    assert len(client.get("/api/v1/model-versions", headers=admin).json()) == 1  # the base


def test_a_worker_reporting_for_a_job_it_does_not_hold_gets_409(
    client, session, admin, sft_params
) -> None:
    client.post("/api/v1/jobs", json={"kind": "sft", "params": sft_params}, headers=admin)
    _a, holder = make_worker(session, "a")
    _b, other = make_worker(session, "b")
    spec = client.post("/api/v1/worker/claim", json={}, headers=holder).json()

    response = client.post(
        f"/api/v1/worker/jobs/{spec['job_id']}/heartbeat",
        json={"lease": spec["lease"], "step": 3},
        headers=other,
    )
    assert response.status_code == 409
    assert "does not hold job" in response.json()["detail"]


def test_claim_answers_204_when_nothing_waits(client, session) -> None:
    _worker, worker = make_worker(session)
    assert client.post("/api/v1/worker/claim", json={}, headers=worker).status_code == 204


def test_worker_tokens_open_the_worker_endpoints_and_nothing_else(client, session, admin) -> None:
    _worker, worker = make_worker(session)
    for path in ("/api/v1/jobs", "/api/v1/me", "/api/v1/projects", "/api/v1/model-versions"):
        assert client.get(path, headers=worker).status_code == 401, path
    for headers in (admin, bearer(session, make_user(session))):
        assert client.post("/api/v1/worker/claim", json={}, headers=headers).status_code == 401


def test_jobs_and_worker_tokens_are_for_admins(client, session) -> None:
    labeler = bearer(session, make_user(session))
    assert client.get("/api/v1/jobs", headers=labeler).status_code == 403
    assert client.post("/api/v1/workers", json={"name": "x"}, headers=labeler).status_code == 403


def test_a_revoked_worker_token_is_refused(client, session, admin) -> None:
    created = client.post("/api/v1/workers", json={"name": "gpu-box"}, headers=admin).json()
    worker = {"Authorization": f"Bearer {created['token']}"}
    assert client.post("/api/v1/worker/claim", json={}, headers=worker).status_code == 204
    client.delete(f"/api/v1/workers/{created['id']}", headers=admin)
    assert client.post("/api/v1/worker/claim", json={}, headers=worker).status_code == 401


def test_bad_job_input_gets_a_clear_message(client, admin, sft_params) -> None:
    bad = {"kind": "sft", "params": {**sft_params, "model_version_id": 404}}
    response = client.post("/api/v1/jobs", json=bad, headers=admin)
    assert response.status_code == 422
    assert response.json()["detail"] == "model_version_id: there is no model version 404."


def test_a_job_on_a_new_snapshot_waits_for_it_then_fails_when_it_lacks_the_stages_files(
    client, session, admin, tmp_path
) -> None:
    base = make_base_version(session, tmp_path / "base")
    body = {"kind": "rm", "params": {"snapshot": "new", "model_version_id": base.id}}

    created = client.post("/api/v1/jobs", json=body, headers=admin)

    assert created.status_code == 201 and created.json()["state"] == "waiting"
    snapshot_id = created.json()["params"]["snapshot"]
    assert client.get(f"/api/v1/exports/{snapshot_id}", headers=admin).json()["state"] == "done"
    job = client.get(f"/api/v1/jobs/{created.json()['id']}", headers=admin).json()
    assert job["state"] == "failed"
    assert f"snapshot: {tmp_path}" in job["error"] and "has no rm records" in job["error"]
