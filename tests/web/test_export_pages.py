"""The admin's export pages: a form, a self-polling progress fragment, the download."""

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.main import create_app
from app.models import Snapshot
from app.models.base import utcnow
from app.schemas.snapshot import ExportRequest
from app.services import exports
from tests.factories import login, make_project, make_ranking, make_ranking_item, make_user


def test_an_admin_makes_a_snapshot_from_the_form(client, session) -> None:
    project = make_project(session)
    make_ranking_item(session, project, k=4)
    make_ranking(session, project, make_user(session))
    token = login(client, make_user(session, "admin"))

    page = client.post(
        "/admin/exports",
        data={
            "csrf_token": token,
            "project_id": str(project.id),
            "labeler_groups": ["training", "imported"],
            "max_prompts_per_author": "200",
            "format": "jsonl",
            "pairs": "all",
            "snapshot_id": "from-the-form",
        },
    )

    snapshot = session.get(Snapshot, "from-the-form")
    assert snapshot.state == "done" and snapshot.created_by_id is not None
    assert snapshot.request["pairs"] == "all"
    assert "Download .tar.gz" in page.text and "rm.train.jsonl" in page.text
    assert 'hx-trigger="every 1s"' not in page.text  # finished: the fragment stops polling


def test_the_form_keeps_too_fast_work_and_gold_rankings_only_when_ticked(client, session):
    make_project(session)
    token = login(client, make_user(session, "admin"))
    form = {"csrf_token": token, "labeler_groups": "training", "format": "jsonl"}

    client.post("/admin/exports", data={**form, "snapshot_id": "unticked"})
    client.post(
        "/admin/exports",
        data={**form, "snapshot_id": "ticked", "include_too_fast": "on", "include_gold": "on"},
    )

    unticked, ticked = session.get(Snapshot, "unticked"), session.get(Snapshot, "ticked")
    assert not unticked.request["include_too_fast"] and not unticked.request["include_gold"]
    assert ticked.request["include_too_fast"] and ticked.request["include_gold"]


def test_the_form_takes_an_agreement_threshold(client, session) -> None:
    token = login(client, make_user(session, "admin"))
    form = {"csrf_token": token, "labeler_groups": "training", "snapshot_id": "agreeing"}

    client.post("/admin/exports", data={**form, "min_labeler_agreement": "0.65"})

    assert session.get(Snapshot, "agreeing").request["min_labeler_agreement"] == 0.65


def test_an_agreement_threshold_above_one_is_refused_and_kept_in_the_form(client, session):
    token = login(client, make_user(session, "admin"))
    form = {"csrf_token": token, "labeler_groups": "training", "min_labeler_agreement": "65"}

    response = client.post("/admin/exports", data=form)

    assert response.status_code == 422 and "min_labeler_agreement" in response.text
    assert 'name="min_labeler_agreement" type="number"' in response.text
    assert 'value="65"' in response.text
    assert session.scalar(select(Snapshot)) is None


def test_a_running_snapshot_shows_a_progress_bar_that_polls_itself(client, session, settings):
    exports.request_snapshot(session, settings, ExportRequest(), snapshot_id="busy")
    login(client, make_user(session, "admin"))

    fragment = client.get("/admin/exports/busy", headers={"HX-Request": "true"}).text

    assert fragment.lstrip().startswith('<section id="progress"')
    assert 'hx-trigger="every 1s"' in fragment and "<progress" in fragment
    assert "<html" not in fragment


def test_a_bad_form_shows_the_error_and_makes_nothing(client, session) -> None:
    token = login(client, make_user(session, "admin"))
    response = client.post(
        "/admin/exports",
        data={
            "csrf_token": token,
            "labeler_groups": "training",
            "since": "2026-02-01T00:00",
            "until": "2026-01-01T00:00",
        },
    )
    assert response.status_code == 422 and "time window is empty" in response.text
    assert session.scalar(select(Snapshot)) is None


def test_the_archive_downloads_from_the_page(client, session, settings, db) -> None:
    exports.request_snapshot(session, settings, ExportRequest(), snapshot_id="dl")
    exports.run_snapshot(db, settings, "dl")
    login(client, make_user(session, "admin"))
    response = client.get("/admin/exports/dl/archive")
    assert response.status_code == 200 and response.content[:2] == b"\x1f\x8b"


def test_the_export_form_needs_the_csrf_token(client, session) -> None:
    login(client, make_user(session, "admin"))
    assert client.post("/admin/exports", data={"format": "jsonl"}).status_code == 403
    assert session.scalar(select(Snapshot)) is None


def test_labelers_may_not_see_or_make_exports(client, session, settings) -> None:
    exports.request_snapshot(session, settings, ExportRequest(), snapshot_id="x")
    token = login(client, make_user(session))
    assert client.get("/admin/exports").status_code == 403
    assert client.get("/admin/exports/x").status_code == 403
    assert client.get("/admin/exports/x/archive").status_code == 403
    assert client.post("/admin/exports", data={"csrf_token": token}).status_code == 403


def test_the_app_fails_exports_left_running_when_it_starts(session, settings, db) -> None:
    exports.request_snapshot(session, settings, ExportRequest(), snapshot_id="before-restart")
    past = utcnow() - exports.STALE_AFTER - timedelta(seconds=1)
    session.execute(update(Snapshot).values(state="running", heartbeat_at=past))
    session.commit()

    with TestClient(create_app(settings, db)):
        pass

    snapshot = session.get(Snapshot, "before-restart")
    session.refresh(snapshot)
    assert snapshot.state == "failed" and snapshot.error == exports.STUCK_MESSAGE
