"""Overlap: an exact, deterministic share of ranking items goes to several labelers."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.errors import InvalidInput, validated
from app.models import Slot
from app.schemas.admin import CompletionIn, NewPromptIn, ProjectSettingsIn, RankingItemIn
from app.services import imports, overlap
from tests.factories import make_project, make_ranking_item


@given(st.integers(0, 100), st.integers(0, 2000))
def test_after_any_number_of_items_exactly_the_share_overlaps(percent: int, n: int) -> None:
    overlapping = sum(overlap.is_overlap(i, percent) for i in range(n))
    assert overlapping == n * percent // 100


def _slot_counts(session, items) -> list[int]:
    return [session.scalar(select(func.count()).where(Slot.item_id == item.id)) for item in items]


def test_by_default_every_tenth_ranking_item_gets_two_labelers(session) -> None:
    project = make_project(session)
    items = [make_ranking_item(session, project) for _ in range(20)]

    counts = _slot_counts(session, items)

    assert [i for i, c in enumerate(counts) if c == 2] == [9, 19]
    assert counts.count(1) == 18


def test_numbering_continues_across_imports(session) -> None:
    project = make_project(session, overlap_percent=50, overlap_annotations=3)

    def lines(*colors: str) -> list[tuple[int, RankingItemIn]]:
        return [
            (n, RankingItemIn(prompt=NewPromptIn(instruction=f"{color}?"), completions=answers))
            for n, color in enumerate(colors, start=1)
        ]

    answers = [CompletionIn(text=t) for t in "abcd"]
    first = imports.import_ranking_items(session, project, lines("red", "green", "blue")).items
    second = imports.import_ranking_items(session, project, lines("cyan", "pink", "gray")).items

    assert _slot_counts(session, first + second) == [1, 3, 1, 3, 1, 3]


def test_overlap_items_never_get_fewer_slots_than_annotations_per_item(session) -> None:
    project = make_project(session, annotations_per_item=4, overlap_percent=100)
    assert _slot_counts(session, [make_ranking_item(session, project)]) == [4]


def test_no_overlap_when_the_share_is_zero(session) -> None:
    project = make_project(session, overlap_percent=0)
    items = [make_ranking_item(session, project) for _ in range(10)]
    assert set(_slot_counts(session, items)) == {1}


@pytest.mark.parametrize(
    ("field", "value"),
    [("overlap_percent", 101), ("overlap_percent", -1), ("overlap_annotations", 1)],
)
def test_overlap_settings_out_of_range_are_refused(field: str, value: int) -> None:
    with pytest.raises(InvalidInput, match=field):
        validated(ProjectSettingsIn, {"name": "p", field: value})
