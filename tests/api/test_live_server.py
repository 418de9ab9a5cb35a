"""Many labelers at once against a real uvicorn server: more simultaneous requests than the
server has worker threads and pooled connections, which is where a server that waits for the
database inside its threads starves itself."""

import asyncio

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Ranking, Task
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
