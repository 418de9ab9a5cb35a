"""Artifacts through the API, for workers without the app's disk: a worker downloads the
snapshot and the model versions of the job it holds, and uploads the trained model as a tar
archive that the app checks (size, sha256, paths) before unpacking it into the job's run
directory. Nothing else is reachable with a worker token."""

import hashlib
import io
import socket
import tarfile
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app.models import ModelVersion
from tests.factories import (
    make_base_version,
    make_job,
    make_model_dir,
    make_snapshot_dir,
    make_worker,
)


@pytest.fixture
def held(client, session, settings, tmp_path: Path) -> dict:
    """An SFT job claimed by a worker: its spec and the worker's headers."""
    base = make_base_version(session, tmp_path / "base")
    params = {"snapshot": str(make_snapshot_dir(tmp_path / "snap")), "model_version_id": base.id}
    make_job(session, "sft", params, settings.data_dir)
    _worker, headers = make_worker(session)
    spec = client.post("/api/v1/worker/claim", json={}, headers=headers).json()
    return {"spec": spec, "headers": headers, "base": base}


def tar_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def names_in(archive: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return tar.getnames()


MODEL = tar_of({"config.json": b'{"model_type": "gpt2"}', "model.safetensors": b"\0" * 50_000})


def upload(client, held: dict, body: bytes, **headers: str):
    spec = held["spec"]
    sha = headers.pop("sha", hashlib.sha256(body).hexdigest())
    return client.put(
        f"/api/v1/worker/jobs/{spec['job_id']}/model",
        params={"lease": spec["lease"]},
        content=body,
        headers={**held["headers"], "X-Content-SHA256": sha, **headers},
    )


def finish(client, held: dict, artifact_path: str):
    spec = held["spec"]
    return client.post(
        f"/api/v1/worker/jobs/{spec['job_id']}/finish",
        json={"lease": spec["lease"], "outcome": "succeeded",
              "result": {"artifact_path": artifact_path}},
        headers=held["headers"],
    )  # fmt: skip


def registered(session, held: dict) -> ModelVersion | None:
    query = select(ModelVersion).where(ModelVersion.job_id == held["spec"]["job_id"])
    return session.scalar(query)


def leftovers(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir()) if run_dir.exists() else []


def test_a_worker_downloads_its_jobs_snapshot_checked_by_sha256(client, held) -> None:
    spec = held["spec"]
    response = client.get(
        f"/api/v1/worker/jobs/{spec['job_id']}/snapshot",
        params={"lease": spec["lease"]},
        headers=held["headers"],
    )
    assert response.status_code == 200
    assert response.headers["X-Content-SHA256"] == hashlib.sha256(response.content).hexdigest()
    names = names_in(response.content)
    assert sorted(names) == [
        "manifest.json",
        "ppo.train.jsonl",
        "rm.train.jsonl",
        "sft.train.jsonl",
    ]


def test_a_worker_downloads_the_model_its_job_starts_from(client, held) -> None:
    spec = held["spec"]
    response = client.get(
        f"/api/v1/worker/jobs/{spec['job_id']}/models/{held['base'].id}",
        params={"lease": spec["lease"]},
        headers=held["headers"],
    )
    assert response.status_code == 200
    assert names_in(response.content) == ["config.json"]


def test_a_model_the_job_does_not_use_is_not_served(client, session, held, tmp_path) -> None:
    other = make_base_version(session, tmp_path / "other")
    spec = held["spec"]
    response = client.get(
        f"/api/v1/worker/jobs/{spec['job_id']}/models/{other.id}",
        params={"lease": spec["lease"]},
        headers=held["headers"],
    )
    assert response.status_code == 404
    assert (
        response.json()["detail"] == f"Job {spec['job_id']} does not use model version {other.id}."
    )


def test_a_worker_that_does_not_hold_the_job_can_neither_download_nor_upload(
    client, session, held
) -> None:
    _other, stranger = make_worker(session, "stranger")
    spec = held["spec"]
    where = {"params": {"lease": spec["lease"]}, "headers": stranger}
    assert client.get(f"/api/v1/worker/jobs/{spec['job_id']}/snapshot", **where).status_code == 409
    path = f"/api/v1/worker/jobs/{spec['job_id']}/models/{held['base'].id}"
    assert client.get(path, **where).status_code == 409
    response = upload(client, {**held, "headers": stranger}, MODEL)
    assert response.status_code == 409 and "does not hold job" in response.json()["detail"]
    assert leftovers(Path(spec["run_dir"])) == []


def test_an_uploaded_model_is_unpacked_into_the_run_directory_and_registered_at_finish(
    client, session, held
) -> None:
    response = upload(client, held, MODEL)

    assert response.status_code == 200, response.text
    out = response.json()
    assert out["artifact_path"] == str(Path(held["spec"]["run_dir"]) / "model")
    assert out["sha256"] == hashlib.sha256(MODEL).hexdigest() and out["bytes"] == len(MODEL)
    assert (Path(out["artifact_path"]) / "model.safetensors").stat().st_size == 50_000
    assert registered(session, held) is None  # the finish registers it
    assert finish(client, held, out["artifact_path"]).json()["state"] == "succeeded"
    assert registered(session, held).artifact_path == out["artifact_path"]


def test_an_upload_cut_off_halfway_stores_nothing_and_a_retry_works(client, session, held) -> None:
    run_dir = Path(held["spec"]["run_dir"])
    half = MODEL[: len(MODEL) // 2]

    cut = upload(client, held, half, sha=hashlib.sha256(MODEL).hexdigest(),
                 **{"Content-Length": str(len(MODEL))})  # fmt: skip

    assert cut.status_code == 422
    assert cut.json()["detail"] == (
        f"The upload was cut off after {len(half)} of {len(MODEL)} bytes. Nothing was stored; "
        "upload the archive again."
    )
    assert leftovers(run_dir) == [] and registered(session, held) is None
    refused = finish(client, held, str(run_dir / "model"))
    assert refused.status_code == 422 and "no config.json" in refused.json()["detail"]

    retry = upload(client, held, MODEL)
    assert retry.status_code == 200
    assert finish(client, held, retry.json()["artifact_path"]).json()["state"] == "succeeded"
    assert leftovers(run_dir) == ["model"]


def test_an_upload_that_arrives_damaged_is_refused(client, session, held) -> None:
    damaged = upload(client, held, MODEL, sha="0" * 64)
    assert damaged.status_code == 422 and "arrived damaged" in damaged.json()["detail"]
    assert leftovers(Path(held["spec"]["run_dir"])) == []


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"../escape.json": b"{}", "config.json": b"{}"}, "not a readable tar archive"),
        ({"weights.bin": b"x"}, "holds no config.json at its top"),
    ],
)
def test_an_archive_that_is_not_a_model_directory_is_refused(
    client, held, files: dict, reason: str
) -> None:
    response = upload(client, held, tar_of(files))
    assert response.status_code == 422 and reason in response.json()["detail"]
    assert leftovers(Path(held["spec"]["run_dir"])) == []


def test_a_model_outside_the_jobs_run_directory_is_not_registered(
    client, session, held, tmp_path
) -> None:
    elsewhere = make_model_dir(tmp_path / "elsewhere")
    response = finish(client, held, str(elsewhere))
    assert response.status_code == 422
    assert "is not in the job's run directory" in response.json()["detail"]
    assert registered(session, held) is None


def wait_until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_a_connection_dropped_halfway_through_an_upload_leaves_nothing_behind(
    live_url, client, session, held
) -> None:
    spec, run_dir = held["spec"], Path(held["spec"]["run_dir"])
    host, port = live_url.removeprefix("http://").split(":")
    head = (
        f"PUT /api/v1/worker/jobs/{spec['job_id']}/model?lease={spec['lease']} HTTP/1.1\r\n"
        f"Host: {host}\r\nAuthorization: {held['headers']['Authorization']}\r\n"
        f"X-Content-SHA256: {hashlib.sha256(MODEL).hexdigest()}\r\n"
        f"Content-Length: {len(MODEL)}\r\n\r\n"
    )
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(head.encode() + MODEL[: len(MODEL) // 2])
        wait_until(lambda: any(n.startswith(".upload-") for n in leftovers(run_dir)))
    # The connection dropped while the server was reading the body.
    wait_until(lambda: not leftovers(run_dir))
    assert leftovers(run_dir) == [] and registered(session, held) is None
    assert upload(client, held, MODEL).status_code == 200  # and a retry works
