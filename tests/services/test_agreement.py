"""Agreement statistics on rankings, checked against reference implementations."""

import krippendorff
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from app.services import agreement
from app.services.agreement import RankingTable


def _permutation(k: int, seed: int) -> list[int]:
    return list(np.random.default_rng(seed).permutation(k) + 1)


@st.composite
def strict_rankings(draw: st.DrawFn) -> list[int]:
    k = draw(st.integers(2, 9))
    return draw(st.permutations(range(1, k + 1)))


@st.composite
def rankings_with_ties(draw: st.DrawFn) -> list[int]:
    """Dense ranks: some completions may share a rank."""
    k = draw(st.integers(2, 9))
    raw = draw(st.lists(st.integers(1, k), min_size=k, max_size=k))
    levels = {rank: i + 1 for i, rank in enumerate(sorted(set(raw)))}
    return [levels[r] for r in raw]


@st.composite
def ranking_tables(draw: st.DrawFn) -> RankingTable:
    """Several items, each ranked by a few of 6 labelers, with ties now and then."""
    rows = []
    for item in range(draw(st.integers(1, 12))):
        k = draw(st.integers(2, 9))
        labelers = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4, unique=True))
        for labeler in labelers:
            raw = draw(st.lists(st.integers(1, k), min_size=k, max_size=k))
            levels = {rank: i + 1 for i, rank in enumerate(sorted(set(raw)))}
            rows.append((item, labeler, [levels[r] for r in raw]))
    return RankingTable.from_rows(rows)


def _rate(first: list[int], second: list[int]) -> float | None:
    table = RankingTable.from_rows([(1, 1, first), (1, 2, second)])
    return agreement.agreement_rate(agreement.compare(table))


@given(strict_rankings())
def test_a_labeler_agrees_fully_with_an_identical_copy(ranks: list[int]) -> None:
    assert _rate(ranks, list(ranks)) == 1.0


@given(rankings_with_ties())
def test_identical_rankings_with_ties_agree_fully(ranks: list[int]) -> None:
    assert _rate(ranks, list(ranks)) == 1.0


@given(strict_rankings())
def test_a_reversed_ranking_agrees_on_no_pair(ranks: list[int]) -> None:
    k = len(ranks)
    assert _rate(ranks, [k + 1 - r for r in ranks]) == 0.0


def test_a_tie_against_an_order_counts_half() -> None:
    # Pairs: (a,b) tie vs order -> 0.5; (a,c) agree; (b,c) agree.
    assert _rate([1, 1, 2], [1, 2, 3]) == pytest.approx((0.5 + 1 + 1) / 3)


def test_one_swap_of_neighbours_disagrees_on_one_pair() -> None:
    assert _rate([1, 2, 3, 4], [2, 1, 3, 4]) == pytest.approx(5 / 6)


def test_the_rate_pools_completion_pairs_over_items() -> None:
    table = RankingTable.from_rows(
        [(1, 1, [1, 2]), (1, 2, [2, 1]), (2, 1, [1, 2, 3, 4]), (2, 2, [1, 2, 3, 4])]
    )
    # Item 1: 0 of 1 pair; item 2: 6 of 6 pairs.
    assert agreement.agreement_rate(agreement.compare(table)) == pytest.approx(6 / 7)


def test_items_ranked_once_give_no_comparison() -> None:
    table = RankingTable.from_rows([(1, 1, [1, 2, 3]), (2, 2, [3, 2, 1])])
    comparisons = agreement.compare(table)
    assert len(comparisons) == 0
    assert agreement.agreement_rate(comparisons) is None
    assert agreement.bootstrap_interval(comparisons) is None
    assert agreement.krippendorff_alpha_ordinal(table, comparisons) is None


def test_three_labelers_on_one_item_give_three_comparisons() -> None:
    table = RankingTable.from_rows([(7, 1, [1, 2]), (7, 2, [1, 2]), (7, 3, [2, 1])])
    comparisons = agreement.compare(table)
    assert len(comparisons) == 3
    assert agreement.agreement_rate(comparisons) == pytest.approx(1 / 3)


def _two_permutations(k: int) -> st.SearchStrategy[tuple[list[int], list[int]]]:
    ranks = st.permutations(range(1, k + 1))
    return st.tuples(ranks, ranks)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 9).flatmap(_two_permutations))
def test_kendall_tau_matches_scipy_on_strict_rankings(pair: tuple[list[int], list[int]]) -> None:
    first, second = pair
    [tau] = agreement.compare(RankingTable.from_rows([(1, 1, first), (1, 2, second)])).tau
    assert tau == pytest.approx(scipy.stats.kendalltau(first, second).statistic)


@settings(max_examples=60, deadline=None)
@given(rankings_with_ties(), st.data())
def test_kendall_tau_b_matches_scipy_with_ties(first: list[int], data: st.DataObject) -> None:
    k = len(first)
    raw = data.draw(st.lists(st.integers(1, k), min_size=k, max_size=k))
    levels = {rank: i + 1 for i, rank in enumerate(sorted(set(raw)))}
    second = [levels[r] for r in raw]
    [tau] = agreement.compare(RankingTable.from_rows([(1, 1, first), (1, 2, second)])).tau
    expected = scipy.stats.kendalltau(first, second).statistic
    if np.isnan(expected):
        assert np.isnan(tau)
    else:
        assert tau == pytest.approx(expected)


def _reliability_data(table: RankingTable) -> np.ndarray:
    """The krippendorff package's layout: one row per labeler, one column per (item, completion)."""
    labelers = sorted(set(table.labeler.tolist()))
    items = sorted(set(table.item.tolist()))
    data = np.full((len(labelers), len(items) * agreement.MAX_K), np.nan)
    for item, labeler, ranks in zip(table.item, table.labeler, table.ranks, strict=True):
        column = items.index(item) * agreement.MAX_K
        for position, rank in enumerate(ranks):
            if rank:
                data[labelers.index(labeler), column + position] = rank
    return data


@settings(max_examples=60, deadline=None)
@given(ranking_tables())
def test_krippendorff_alpha_matches_the_krippendorff_package(table: RankingTable) -> None:
    comparisons = agreement.compare(table)
    alpha = agreement.krippendorff_alpha_ordinal(table, comparisons)
    data = _reliability_data(table)
    pairable = (~np.isnan(data)).sum(axis=0) >= 2
    values = np.unique(data[:, pairable][~np.isnan(data[:, pairable])])
    if alpha is None:
        assert not pairable.any() or len(values) < 2
        return
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
    assert alpha == pytest.approx(expected)


def test_krippendorff_alpha_is_one_when_everyone_agrees() -> None:
    rows = [(item, labeler, _permutation(5, item)) for item in range(4) for labeler in (1, 2, 3)]
    table = RankingTable.from_rows(rows)
    assert agreement.krippendorff_alpha_ordinal(table, agreement.compare(table)) == 1.0


def test_the_bootstrap_interval_is_seeded_and_brackets_the_rate() -> None:
    rng = np.random.default_rng(3)
    rows = []
    for item in range(80):
        ranks = list(rng.permutation(5) + 1)
        rows.append((item, 1, ranks))
        rows.append((item, 2, ranks if rng.random() < 0.7 else list(rng.permutation(5) + 1)))
    comparisons = agreement.compare(RankingTable.from_rows(rows))

    low, high = agreement.bootstrap_interval(comparisons)

    assert low < agreement.agreement_rate(comparisons) < high
    assert (low, high) == agreement.bootstrap_interval(comparisons)


def test_the_bootstrap_interval_is_the_plain_resampling_of_items() -> None:
    """The same numbers as drawing 100 samples at a time and gathering them all at once,
    which is what the interval always was (bootstrap_interval draws in blocks of bounded
    memory)."""
    rng = np.random.default_rng(5)
    rows = [
        (item, labeler, list(rng.permutation(4) + 1)) for item in range(301) for labeler in (1, 2)
    ]
    comparisons = agreement.compare(RankingTable.from_rows(rows))
    _items, per_item = np.unique(comparisons.item, return_inverse=True)
    agree2 = np.bincount(per_item, weights=comparisons.agree2)
    pairs = np.bincount(per_item, weights=comparisons.pairs)
    draws = np.random.default_rng(agreement.BOOTSTRAP_SEED)
    rates = []
    for _ in range(agreement.BOOTSTRAP_SAMPLES // 100):
        drawn = draws.integers(0, len(agree2), size=(100, len(agree2)))
        rates.append(agree2[drawn].sum(axis=1) / (2 * pairs[drawn].sum(axis=1)))
    low, high = np.percentile(np.concatenate(rates), [2.5, 97.5])

    assert agreement.bootstrap_interval(comparisons) == (low, high)


@pytest.mark.parametrize("draws_at_once", [1, 7 * 301, 10**6])
def test_the_bootstrap_interval_does_not_depend_on_how_much_is_drawn_at_once(
    monkeypatch, draws_at_once: int
) -> None:
    """Large snapshots draw one sample at a time (bounded memory), small ones all at once."""
    rng = np.random.default_rng(7)
    rows = [
        (item, labeler, list(rng.permutation(5) + 1)) for item in range(301) for labeler in (1, 2)
    ]
    comparisons = agreement.compare(RankingTable.from_rows(rows))
    expected = agreement.bootstrap_interval(comparisons)

    monkeypatch.setattr(agreement, "_BOOTSTRAP_DRAWS", draws_at_once)

    assert agreement.bootstrap_interval(comparisons) == expected


@pytest.mark.parametrize("items", [1, 2, 7, 1000, 99_999])
def test_numpy_draws_the_same_item_numbers_as_uint32_and_as_int64(items: int) -> None:
    # bootstrap_interval draws uint32 to halve its memory; the interval must not change.
    as_int64 = np.random.default_rng(0).integers(0, items, size=(3, 1000))
    as_uint32 = np.random.default_rng(0).integers(0, items, size=(3, 1000), dtype=np.uint32)
    assert np.array_equal(as_int64, as_uint32)


def test_each_labeler_is_scored_on_the_comparisons_they_took_part_in() -> None:
    table = RankingTable.from_rows(
        [(1, 10, [1, 2]), (1, 20, [1, 2]), (1, 30, [2, 1]), (2, 10, [1, 2]), (2, 20, [1, 2])]
    )
    by_labeler = {
        row.labeler: row for row in agreement.per_labeler(table, agreement.compare(table))
    }
    assert by_labeler[10].rate == pytest.approx(2 / 3)  # agrees with 20 twice, not with 30
    assert by_labeler[10].comparisons == 3
    assert by_labeler[30].rate == 0.0


def test_labeler_pairs_get_their_own_agreement_and_tau() -> None:
    table = RankingTable.from_rows(
        [(1, 10, [1, 2, 3]), (1, 20, [1, 2, 3]), (2, 20, [1, 2, 3]), (2, 10, [3, 2, 1])]
    )
    [pair] = agreement.per_labeler_pair(table, agreement.compare(table))
    assert (pair.labeler_a, pair.labeler_b, pair.comparisons) == (10, 20, 2)
    assert pair.rate == pytest.approx(0.5)
    assert pair.tau == pytest.approx(0.0)


def test_agreement_per_day_counts_a_comparison_on_the_day_of_its_second_ranking() -> None:
    days = [np.datetime64("2026-03-01"), np.datetime64("2026-03-02")] * 2
    table = RankingTable.from_rows(
        [(1, 1, [1, 2]), (1, 2, [1, 2]), (2, 1, [1, 2]), (2, 2, [2, 1])], days
    )
    [day] = agreement.per_day(agreement.compare(table))
    assert (str(day.day), day.comparisons, day.rate) == ("2026-03-02", 2, 0.5)
