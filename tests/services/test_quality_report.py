"""The project quality report: agreement and labeler statistics loaded from the database."""

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import update

from app.errors import InvalidInput, validated
from app.models import Ranking, Task
from app.schemas.labeling import SkipIn
from app.schemas.quality import StatsFilter
from app.services import queue
from app.services.quality_report import project_report
from tests.factories import (
    make_agreeing_and_opposed_pair,
    make_project,
    make_ranking_item,
    make_user,
    rank_next,
)


@pytest.fixture
def two_labelers_on_two_items(session):
    """Ann and Bob rank the same two items: they agree fully on one, on no pair of the other."""
    return make_agreeing_and_opposed_pair(session)


def test_agreement_pools_the_pairs_of_every_item_ranked_twice(
    session, two_labelers_on_two_items
) -> None:
    project, _ann, _bob = two_labelers_on_two_items

    summary = project_report(session, project, StatsFilter()).summary

    assert summary.rate == 0.5
    assert (summary.comparisons, summary.items_compared, summary.rankings) == (2, 2, 4)
    assert summary.completion_pairs == 12
    assert summary.tau == 0.0


def test_each_labeler_row_carries_their_agreement_with_the_others(
    session, two_labelers_on_two_items
) -> None:
    project, _ann, _bob = two_labelers_on_two_items

    rows = project_report(session, project, StatsFilter()).labelers

    assert [(r.username, r.agreement, r.comparisons, r.rankings) for r in rows] == [
        ("ann", 0.5, 2, 2),
        ("bob", 0.5, 2, 2),
    ]


def test_a_time_window_keeps_only_work_submitted_in_it(session, two_labelers_on_two_items) -> None:
    project, _ann, bob = two_labelers_on_two_items
    # Bob's disagreeing ranking was submitted long ago.
    last = max(r.id for r in session.query(Ranking).filter_by(labeler_id=bob.id))
    session.execute(
        update(Ranking).where(Ranking.id == last).values(created_at=datetime(2020, 5, 1, 12))
    )
    session.commit()

    recent = project_report(session, project, StatsFilter(since=date(2021, 1, 1))).summary
    old = project_report(session, project, StatsFilter(until=date(2020, 5, 1))).summary

    assert (recent.rate, recent.rankings) == (1.0, 3)
    assert (old.rate, old.rankings) == (None, 1)


def test_a_labeler_group_limits_the_statistics_to_its_members(session) -> None:
    project = make_project(session, annotations_per_item=3)
    make_ranking_item(session, project, k=4)
    ann, bob, cy = (make_user(session) for _ in range(3))
    rank_next(session, project, ann, [1, 2, 3, 4])
    rank_next(session, project, bob, [1, 2, 3, 4])
    rank_next(session, project, cy, [4, 3, 2, 1])

    group = StatsFilter(labeler_ids=[ann.id, bob.id])
    report = project_report(session, project, group)

    assert report.summary.rate == 1.0
    assert {r.labeler_id for r in report.labelers} == {ann.id, bob.id}


def test_skips_all_bad_and_flags_are_counted_per_labeler(session) -> None:
    project = make_project(session)
    for _ in range(4):
        make_ranking_item(session, project, k=4)
    ann = make_user(session)
    rank_next(session, project, ann, [1, 2, 3, 4], flags={0: ["harmful"], 1: ["hallucination"]})
    rank_next(session, project, ann, [1, 2, 3, 4], all_bad=True, flags={2: ["harmful"]})
    task = queue.next_task(session, project, ann, "ranking")
    queue.skip_task(session, task.id, ann, SkipIn(reason="intent_unclear"))

    [row] = project_report(session, project, StatsFilter()).labelers

    assert (row.submitted, row.skipped, row.skip_rate) == (2, 1, pytest.approx(1 / 3))
    assert row.all_bad_share == 0.5
    assert row.flag_rates["harmful"] == pytest.approx(2 / 8)
    assert row.flag_rates["hallucination"] == pytest.approx(1 / 8)
    assert row.flag_rates["sexual_or_violent"] == 0.0


def test_median_time_per_task_ignores_skips(session) -> None:
    project = make_project(session)
    for _ in range(4):
        make_ranking_item(session, project, k=4)
    ann = make_user(session)
    for _ in range(3):
        rank_next(session, project, ann, [1, 2, 3, 4])
    task = queue.next_task(session, project, ann, "ranking")
    queue.skip_task(session, task.id, ann, SkipIn(reason="intent_unclear"))
    start = datetime(2026, 1, 5, 9)
    for seconds, task in zip((30, 60, 600, 5), session.query(Task).order_by(Task.id), strict=True):
        task.served_at, task.finished_at = start, start + timedelta(seconds=seconds)
    session.commit()

    report = project_report(session, project, StatsFilter())

    assert report.labelers[0].median_seconds == 60
    assert sum(b.count for b in report.time_histogram) == 3
    assert [(d.submitted, d.skipped) for d in report.throughput] == [(3, 1)]


def test_a_project_without_rankings_gives_an_empty_report(session) -> None:
    report = project_report(session, make_project(session), StatsFilter())
    assert report.summary.rate is None and report.summary.interval is None
    assert report.labelers == [] and report.pairs == []


def test_a_window_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(InvalidInput, match="must not be after"):
        validated(StatsFilter, {"since": "2026-02-01", "until": "2026-01-01"})
