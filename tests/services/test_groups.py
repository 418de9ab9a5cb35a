"""Labeler groups: held-out labelers' work is kept apart from training data and reported apart."""

import pytest
from sqlalchemy import select

from app.errors import InvalidInput
from app.models import Ranking
from app.schemas.quality import StatsFilter
from app.services import groups
from app.services.quality_report import project_report
from tests.factories import make_project, make_ranking_item, make_user, rank_next


def test_new_labelers_are_in_the_training_group(session) -> None:
    assert make_user(session).labeler_group == "training"


def test_an_admin_can_move_a_labeler_to_the_held_out_group(session) -> None:
    labeler = make_user(session)
    groups.set_group(session, labeler.id, "held_out")
    session.refresh(labeler)
    assert labeler.labeler_group == "held_out"


def test_an_unknown_group_is_refused_and_nothing_changes(session) -> None:
    labeler = make_user(session)
    with pytest.raises(InvalidInput, match="no labeler group"):
        groups.set_group(session, labeler.id, "favourites")
    session.refresh(labeler)
    assert labeler.labeler_group == "training"


def test_admins_belong_to_no_group(session) -> None:
    with pytest.raises(InvalidInput, match="Admins"):
        groups.set_group(session, make_user(session, "admin").id, "held_out")


def test_the_training_condition_leaves_out_held_out_work(session) -> None:
    project = make_project(session, annotations_per_item=2)
    make_ranking_item(session, project)
    trained, held = make_user(session), make_user(session)
    groups.set_group(session, held.id, "held_out")
    rank_next(session, project, trained, [1, 2, 3, 4])
    rank_next(session, project, held, [1, 2, 3, 4])

    training = session.scalars(
        select(Ranking.labeler_id).where(groups.training_labeler_condition(Ranking.labeler_id))
    ).all()
    held_out = session.scalars(
        select(Ranking.labeler_id).where(groups.held_out_labeler_condition(Ranking.labeler_id))
    ).all()

    assert (training, held_out) == ([trained.id], [held.id])


def test_the_quality_report_shows_agreement_within_and_between_groups(session) -> None:
    """Two training labelers agree fully; the held-out labeler reverses their order."""
    project = make_project(session, annotations_per_item=3)
    make_ranking_item(session, project)
    ann, bob, cid = make_user(session), make_user(session), make_user(session)
    groups.set_group(session, cid.id, "held_out")
    rank_next(session, project, ann, [1, 2, 3, 4])
    rank_next(session, project, bob, [1, 2, 3, 4])
    rank_next(session, project, cid, [4, 3, 2, 1])

    report = project_report(session, project, StatsFilter())

    by_key = {g.key: g for g in report.groups}
    assert (by_key["training"].rate, by_key["training"].comparisons) == (1.0, 1)
    assert (by_key["held_out"].rate, by_key["held_out"].comparisons) == (None, 0)
    assert by_key["held_out_vs_training"].rate == 0.0
    assert by_key["held_out_vs_training"].comparisons == 2
