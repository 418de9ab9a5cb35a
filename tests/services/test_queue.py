"""Task assignment: leases on slots, one task per labeler and item, exact annotation counts."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update

from app.db import Database
from app.models import Project, Slot, Task, User
from app.schemas.labeling import SkipIn
from app.services import queue
from tests.factories import make_project, make_prompt, make_ranking_item, make_user


def test_a_served_task_leases_a_slot_for_the_project_lease_time(session) -> None:
    project = make_project(session, lease_seconds=600)
    make_ranking_item(session, project)
    labeler = make_user(session)

    task = queue.next_task(session, project, labeler, "ranking")

    assert task is not None and task.state == "active"
    assert task.lease_expires_at - task.served_at == timedelta(seconds=600)
    slot = session.get(Slot, task.slot_id)
    assert (slot.state, slot.labeler_id) == ("leased", labeler.id)


def test_asking_again_returns_the_same_unfinished_task(session) -> None:
    project = make_project(session)
    make_ranking_item(session, project)
    make_ranking_item(session, project)
    labeler = make_user(session)

    first = queue.next_task(session, project, labeler, "ranking")
    again = queue.next_task(session, project, labeler, "ranking")

    assert again.id == first.id


def test_completions_are_shown_in_a_per_labeler_order(session) -> None:
    project = make_project(session, annotations_per_item=10)
    item = make_ranking_item(session, project, k=9)
    orders = {
        tuple(queue.next_task(session, project, make_user(session), "ranking").completion_order)
        for _ in range(6)
    }
    assert len(orders) > 1
    assert all(sorted(order) == sorted(c.id for c in item.completions) for order in orders)


def test_the_oldest_waiting_item_is_served_first(session) -> None:
    project = make_project(session)
    items = [make_ranking_item(session, project) for _ in range(3)]
    queue.next_task(session, project, make_user(session), "ranking")  # takes the first

    task = queue.next_task(session, project, make_user(session), "ranking")

    assert task.item_id == items[1].id


def test_a_labeler_never_gets_the_same_item_twice(session) -> None:
    project = make_project(session, annotations_per_item=3)
    make_ranking_item(session, project)
    labeler = make_user(session)
    task = queue.next_task(session, project, labeler, "ranking")
    queue.skip_task(session, task.id, labeler, SkipIn(reason="intent_unclear"))

    assert queue.next_task(session, project, labeler, "ranking") is None


def test_a_labeler_never_demonstrates_their_own_prompt(session) -> None:
    project = make_project(session)
    author, other = make_user(session), make_user(session)
    make_prompt(session, project, author)

    assert queue.next_task(session, project, author, "demonstration") is None
    assert queue.next_task(session, project, other, "demonstration") is not None


def test_a_labeler_never_ranks_completions_of_their_own_prompt(session) -> None:
    project = make_project(session)
    author = make_user(session)
    make_ranking_item(session, project, prompt=make_prompt(session, project, author))

    assert queue.next_task(session, project, author, "ranking") is None


def test_annotations_per_item_is_honoured_exactly(session) -> None:
    project = make_project(session, annotations_per_item=2)
    make_ranking_item(session, project)
    labelers = [make_user(session) for _ in range(4)]

    served = [queue.next_task(session, project, labeler, "ranking") for labeler in labelers]

    assert [t is not None for t in served] == [True, True, False, False]


def test_an_expired_lease_returns_the_slot_to_the_pool(session) -> None:
    project = make_project(session)
    make_ranking_item(session, project)
    first, second = make_user(session), make_user(session)
    task = queue.next_task(session, project, first, "ranking")
    assert queue.next_task(session, project, second, "ranking") is None

    session.execute(update(Slot).values(lease_expires_at=task.served_at - timedelta(seconds=1)))
    session.commit()
    taken_over = queue.next_task(session, project, second, "ranking")

    assert taken_over is not None and taken_over.slot_id == task.slot_id
    session.refresh(task)
    assert task.state == "expired"


def test_skipping_records_the_reason_and_frees_the_slot(session) -> None:
    project = make_project(session)
    make_ranking_item(session, project)
    first, second = make_user(session), make_user(session)
    task = queue.next_task(session, project, first, "ranking")

    queue.skip_task(session, task.id, first, SkipIn(reason="sensitive", note="graphic"))

    assert (task.state, task.skip_reason, task.skip_note) == ("skipped", "sensitive", "graphic")
    assert queue.next_task(session, project, second, "ranking") is not None


def test_waiting_counts_exclude_own_prompts_and_items_already_had(session) -> None:
    project = make_project(session)
    labeler = make_user(session)
    make_ranking_item(session, project)
    make_ranking_item(session, project)
    make_prompt(session, project, labeler)
    queue.next_task(session, project, labeler, "ranking")

    assert queue.waiting_counts(session, project.id, labeler.id) == {
        "ranking": 1,
        "demonstration": 0,
        "comparison": 0,
    }


def test_concurrent_labelers_never_share_a_slot_or_overshoot(db: Database) -> None:
    with db.session() as session:
        project = make_project(session, annotations_per_item=2)
        for _ in range(5):
            make_ranking_item(session, project)
        labelers = [make_user(session) for _ in range(16)]

    def claim(labeler_id: int) -> int | None:
        with db.session() as s:
            task = queue.next_task(
                s, s.get(Project, project.id), s.get(User, labeler_id), "ranking"
            )
            return task.id if task else None

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(claim, [u.id for u in labelers] * 3))

    with db.session() as session:
        tasks = session.scalars(select(Task)).all()
        assert len([r for r in results if r]) >= 10
        assert len(tasks) == 10  # 5 items x 2 slots, no more
        assert len({t.slot_id for t in tasks}) == 10
        assert len({(t.item_id, t.labeler_id) for t in tasks}) == 10
        leased = session.scalar(select(func.count()).where(Slot.state == "leased"))
        assert leased == 10


def test_a_slot_whose_claim_is_in_flight_is_passed_over_not_waited_for(db: Database) -> None:
    """PostgreSQL only: SQLite's writers take turns, so two claims never overlap there."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    with db.session() as session:
        project = make_project(session)
        first, second = make_ranking_item(session, project), make_ranking_item(session, project)
        labeler = make_user(session)
    with db.session() as in_flight, db.session() as session:
        # Another labeler's claim of the first item's slot, not yet committed.
        in_flight.execute(select(Slot).where(Slot.item_id == first.id).with_for_update()).all()
        session.execute(text("SET lock_timeout = '5s'"))  # waiting would fail, not hang

        task = queue.next_task(
            session, session.get(Project, project.id), session.get(User, labeler.id), "ranking"
        )

        assert task is not None and task.item_id == second.id
