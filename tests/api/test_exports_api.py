"""Export snapshots through the API: admins only; written in the background; one archive."""

import io
import json
import tarfile

from app.schemas.snapshot import ExportRequest
from app.services import exports
from tests.factories import bearer, make_project, make_ranking, make_ranking_item, make_user


def ranked_project(session):
    project = make_project(session)
    make_ranking_item(session, project, k=4)
    make_ranking(session, project, make_user(session))
    return project


def test_an_admin_makes_a_snapshot_and_downloads_it_as_one_archive(client, session) -> None:
    project = ranked_project(session)
    headers = bearer(session, make_user(session, "admin"))

    made = client.post(
        "/api/v1/exports",
        json={"project_id": project.id, "pairs": "best_vs_rest"},
        params={"snapshot_id": "api-1"},
        headers=headers,
    )
    # The TestClient returns once the background export has finished.
    status = client.get("/api/v1/exports/api-1", headers=headers).json()
    archive = client.get("/api/v1/exports/api-1/archive", headers=headers)

    assert made.status_code == 202 and made.json()["state"] == "queued"
    assert status["state"] == "done" and sum(status["counts"].values()) == 1 + 1 + 3
    assert archive.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("api-1/manifest.json"))
    assert "api-1/rm.train.jsonl" in names and "api-1/pairs.test.jsonl" in names
    assert manifest["filters"]["project_id"] == project.id


def test_the_list_shows_every_snapshot(client, session) -> None:
    headers = bearer(session, make_user(session, "admin"))
    client.post("/api/v1/exports", json={}, params={"snapshot_id": "a"}, headers=headers)
    client.post("/api/v1/exports", json={}, params={"snapshot_id": "b"}, headers=headers)
    assert {s["id"] for s in client.get("/api/v1/exports", headers=headers).json()} == {"a", "b"}


def test_a_bad_request_is_refused_with_a_message(client, session) -> None:
    headers = bearer(session, make_user(session, "admin"))
    response = client.post("/api/v1/exports", json={"format": "csv"}, headers=headers)
    assert response.status_code == 422
    unknown = client.post("/api/v1/exports", json={"project_id": 42}, headers=headers)
    assert unknown.status_code == 404 and "no project 42" in unknown.json()["detail"]


def test_an_agreement_threshold_is_a_share_between_0_and_1(client, session) -> None:
    headers = bearer(session, make_user(session, "admin"))
    body = {"min_labeler_agreement": 0.7}
    made = client.post("/api/v1/exports", json=body, params={"snapshot_id": "ag"}, headers=headers)
    refused = client.post("/api/v1/exports", json={"min_labeler_agreement": 70}, headers=headers)
    assert made.status_code == 202
    assert client.get("/api/v1/exports/ag", headers=headers).json()["state"] == "done"
    assert refused.status_code == 422 and "min_labeler_agreement" in refused.text


def test_a_snapshot_id_is_used_once(client, session) -> None:
    headers = bearer(session, make_user(session, "admin"))
    client.post("/api/v1/exports", json={}, params={"snapshot_id": "once"}, headers=headers)
    again = client.post("/api/v1/exports", json={}, params={"snapshot_id": "once"}, headers=headers)
    assert again.status_code == 409 and "never overwritten" in again.json()["detail"]


def test_an_unfinished_snapshot_cannot_be_downloaded(client, session, settings) -> None:
    headers = bearer(session, make_user(session, "admin"))
    exports.request_snapshot(session, settings, ExportRequest(), snapshot_id="later")
    response = client.get("/api/v1/exports/later/archive", headers=headers)
    assert response.status_code == 409 and "not finished" in response.json()["detail"]


def test_labelers_and_anonymous_callers_may_not_export(client, session, settings) -> None:
    exports.request_snapshot(session, settings, ExportRequest(), snapshot_id="secret")
    labeler = bearer(session, make_user(session))
    for method, url in [
        ("post", "/api/v1/exports"),
        ("get", "/api/v1/exports"),
        ("get", "/api/v1/exports/secret"),
        ("get", "/api/v1/exports/secret/archive"),
    ]:
        kwargs = {"json": {}} if method == "post" else {}
        assert getattr(client, method)(url, headers=labeler, **kwargs).status_code == 403
        assert getattr(client, method)(url, **kwargs).status_code == 401
