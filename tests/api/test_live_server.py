"""Labelers against a real uvicorn server: more simultaneous requests than the server has
worker threads and pooled connections, which is where a server that waits for the database
inside its threads starves itself; and requests while an export runs in the background."""

import asyncio
import threading

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Ranking, Task
from app.services import exports
from tests.factories import bearer, make_project, make_ranking_item, make_user

LABELERS = 60  # above anyio's 40 worker threads and the connection pool
REQUEST_TIMEOUT_S = 20


async def _label_once(base_url: str, headers: dict[str, str], project_id: int) -> tuple[int, int]:
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S
    ) as http:
        served = await http.post(f"/api/v1/projects/{project_id}/tasks/next?kind=ranking")
        if served.status_code != 200:
            return served.status_code, 0
        task = served.json()
        judgements = [
            {"completion_id": c["id"], "rank": rank}
            for rank, c in enumerate(task["completions"], start=1)
        ]
        stored = await http.post(
            f"/api/v1/tasks/{task['id']}/ranking", json={"judgements": judgements}
        )
        return stored.status_code, task["id"]


async def _label_all(base_url: str, labelers: list[dict[str, str]], project_id: int):  # type: ignore[no-untyped-def]
    return await asyncio.gather(*(_label_once(base_url, h, project_id) for h in labelers))


def test_sixty_labelers_at_once_are_all_served_and_stored(live_url: str, session: Session) -> None:
    project = make_project(session)
    for _ in range(LABELERS):
        make_ranking_item(session, project)
    labelers = [bearer(session, make_user(session)) for _ in range(LABELERS)]
    session.commit()

    results = asyncio.run(_label_all(live_url, labelers, project.id))

    session.commit()  # a fresh snapshot: see what the server wrote
    assert [status for status, _ in results] == [200] * LABELERS
    assert session.scalar(select(func.count()).select_from(Ranking)) == LABELERS
    served_slots = session.scalars(select(Task.slot_id)).all()
    assert len(set(served_slots)) == LABELERS, "a slot was served twice"


def test_a_labeler_is_served_while_an_export_runs_in_the_background(
    live_url: str, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export runs after its request's response is sent; by then the request has given
    back its database session, so the export holds up nobody (on SQLite: no writer's turn)."""
    export_started = threading.Event()
    export_may_finish = threading.Event()
    export_finished = threading.Event()

    def slow_export(*_args: object) -> None:
        export_started.set()
        export_may_finish.wait(2 * REQUEST_TIMEOUT_S)  # past the labeler's timeout
        export_finished.set()

    monkeypatch.setattr(exports, "run_snapshot", slow_export)
    project = make_project(session)
    make_ranking_item(session, project)
    admin = bearer(session, make_user(session, role="admin"))
    labeler = bearer(session, make_user(session))
    session.commit()

    try:
        # One client each: a connection serves its next request only after the last one's
        # background work is done.
        with httpx.Client(base_url=live_url, timeout=REQUEST_TIMEOUT_S) as admins_browser:
            started = admins_browser.post("/api/v1/exports", json={}, headers=admin)
            assert started.status_code == 202
            assert export_started.wait(REQUEST_TIMEOUT_S)
            with httpx.Client(base_url=live_url, timeout=REQUEST_TIMEOUT_S) as labelers_browser:
                served = labelers_browser.post(
                    f"/api/v1/projects/{project.id}/tasks/next?kind=ranking", headers=labeler
                )
        assert served.status_code == 200
        assert not export_finished.is_set(), "the labeler was served only after the export"
    finally:
        export_may_finish.set()
