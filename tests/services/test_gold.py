"""Gold items in the normal ranking queue, and each labeler's accuracy on them."""

import pytest

from app.errors import InvalidInput
from app.models import Item
from app.schemas.quality import StatsFilter
from app.schemas.screening import GoldItemIn
from app.services import gold, queue
from app.services.quality_report import project_report
from tests.factories import make_gold_item, make_project, make_ranking_item, make_user, rank_next


def test_at_100_percent_every_labeler_gets_each_gold_item_once(session) -> None:
    project = make_project(session, gold_percent=100)
    item = make_gold_item(session, project)
    make_ranking_item(session, project)
    ann, bob = make_user(session), make_user(session)

    first = rank_next(session, project, ann, [1, 2, 3, 4])
    second = rank_next(session, project, bob, [1, 2, 3, 4])
    after = rank_next(session, project, ann, [1, 2, 3, 4])

    assert first.item_id == second.item_id == item.id
    assert after.item_id != item.id  # ann had it: normal work follows


def test_at_0_percent_no_gold_item_is_served(session) -> None:
    project = make_project(session, gold_percent=0)
    make_gold_item(session, project)
    assert queue.next_task(session, project, make_user(session), "ranking") is None


def test_gold_accuracy_per_labeler_and_day(session) -> None:
    project = make_project(session, gold_percent=100)
    make_gold_item(session, project, ranks=[1, 2, 3, 4])
    right, wrong = make_user(session, username="right"), make_user(session, username="wrong")
    rank_next(session, project, right, [1, 2, 3, 4])
    rank_next(session, project, wrong, [4, 3, 2, 1])

    report = project_report(session, project, StatsFilter())

    rows = {r.username: r for r in report.labelers}
    assert (rows["right"].gold_agreement, rows["right"].gold_rankings) == (1.0, 1)
    assert rows["wrong"].gold_agreement == 0.0
    assert [(g.username, g.agreement, g.rankings) for g in report.gold_by_day] == [
        ("right", 1.0, 1),
        ("wrong", 0.0, 1),
    ]
    # Both ranked the same item: their disagreement is counted like any other.
    assert report.summary.rate == 0.0


def test_a_batch_with_one_bad_item_adds_none(session) -> None:
    project = make_project(session, k_min=4)
    good = GoldItemIn(instruction="q", completions=["a", "b", "c", "d"], gold_ranks=[1, 2, 3, 4])
    short = GoldItemIn(instruction="q", completions=["a", "b"], gold_ranks=[1, 2])
    with pytest.raises(InvalidInput, match="outside the project's range"):
        gold.add_gold_items(session, project, [good, short])
    assert session.query(Item).count() == 0
