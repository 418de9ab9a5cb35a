"""Inter-annotator agreement on K-wise rankings: pure computation on numpy arrays.

Nothing here touches the database (app/services/quality_report.py loads the arrays), so the
statistics are easy to test against reference implementations and to benchmark.

Definitions
-----------
A *comparison* is two labelers' rankings of the same item. For each of its C(K, 2) completion
pairs, each labeler either prefers one completion (sign +1 or -1) or ties them (sign 0).

* **Pairwise agreement** (as InstructGPT reports it): the share of completion pairs two labelers
  order the same way. Ties: both tied counts as agreement (1), opposite orders as disagreement
  (0), and a tie against an order counts half (0.5) — the labelers neither agree nor disagree.
  In one formula, agreement = 1 - |s_a - s_b| / 2. The rate of a set of comparisons pools all
  their completion pairs (an item with K = 9 weighs 36 pairs, one with K = 4 weighs 6).
* **Bootstrap 95 % interval**: the rate recomputed on items resampled with replacement
  (seeded, so the same data always gives the same interval), 2.5th and 97.5th percentiles.
* **Kendall's tau-b** between the two rankings of a comparison (ties corrected, as
  scipy.stats.kendalltau computes it); undefined, and left out, when a ranking ties everything.
* **Krippendorff's alpha** (ordinal metric): units are (item, completion), coders are labelers,
  values are ranks; only units ranked by two or more labelers count.
"""

from dataclasses import dataclass

import numpy as np

MAX_K = 9
BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 0
# Items drawn at once (as many samples as that makes, at least one): 20 bytes each while the
# sample's values are gathered, so at most about 20 MB whatever the number of items.
_BOOTSTRAP_DRAWS = 1_000_000

# The C(9, 2) completion pairs (i < j) by position; an item with K < 9 uses those with j < K.
_PAIR_I, _PAIR_J = np.triu_indices(MAX_K, k=1)


@dataclass(frozen=True)
class RankingTable:
    """Rankings as arrays, one row per ranking.

    ranks[r, j] is the rank ranking r gave its item's j-th completion (by position), 1 best,
    equal ranks for ties; 0 pads items with fewer than 9 completions. day is the ranking's
    submission date (numpy datetime64[D]).
    """

    item: np.ndarray
    labeler: np.ndarray
    ranks: np.ndarray
    day: np.ndarray

    @classmethod
    def from_rows(
        cls, rows: list[tuple[int, int, list[int]]], days: list[np.datetime64] | None = None
    ) -> "RankingTable":
        """From (item, labeler, ranks by completion position) rows; handy in tests."""
        ranks = np.zeros((len(rows), MAX_K), dtype=np.int8)
        for r, (_item, _labeler, item_ranks) in enumerate(rows):
            ranks[r, : len(item_ranks)] = item_ranks
        return cls(
            item=np.array([row[0] for row in rows], dtype=np.int64),
            labeler=np.array([row[1] for row in rows], dtype=np.int64),
            ranks=ranks,
            day=np.array(days if days is not None else ["1970-01-01"] * len(rows), "M8[D]"),
        )

    def __len__(self) -> int:
        return len(self.item)


@dataclass(frozen=True)
class Comparisons:
    """Every pair (a, b) of rankings of the same item, with per-pair sums.

    agree2 is twice the number of agreeing completion pairs (a tie against an order adds 1),
    so it stays an integer; pairs is the number of completion pairs compared.
    """

    a: np.ndarray
    b: np.ndarray
    item: np.ndarray
    raters_on_item: np.ndarray
    agree2: np.ndarray
    pairs: np.ndarray
    tau: np.ndarray  # NaN where undefined
    day: np.ndarray

    def __len__(self) -> int:
        return len(self.a)


def compare(table: RankingTable) -> Comparisons:
    """Pair up the rankings of each item (two labelers never rank one item twice)."""
    order = np.argsort(table.item, kind="stable")
    item = table.item[order]
    starts = np.flatnonzero(np.r_[True, item[1:] != item[:-1]])
    sizes = np.diff(np.r_[starts, len(item)])
    size_of_row = np.repeat(sizes, sizes)

    a_parts, b_parts = [], []
    # Rows of one item are contiguous after sorting: pair each row with the rows d after it.
    for d in range(1, int(sizes.max(initial=1))):
        same = np.flatnonzero(item[:-d] == item[d:]) if d < len(item) else np.array([], int)
        a_parts.append(order[same])
        b_parts.append(order[same + d])
    a = np.concatenate(a_parts) if a_parts else np.array([], dtype=np.int64)
    b = np.concatenate(b_parts) if b_parts else np.array([], dtype=np.int64)
    raters = size_of_row[np.searchsorted(item, table.item[a])] if len(a) else a

    signs, valid = _pair_signs(table.ranks)
    sa, sb, ok = signs[a], signs[b], valid[a]
    agree2 = np.where(ok, 2 - np.abs(sa - sb), 0).sum(axis=1)
    pairs = ok.sum(axis=1)
    concordance = np.where(ok, sa * sb, 0).sum(axis=1).astype(np.float64)
    untied_a = np.where(ok, np.abs(sa), 0).sum(axis=1)
    untied_b = np.where(ok, np.abs(sb), 0).sum(axis=1)
    denominator = np.sqrt(untied_a.astype(np.float64) * untied_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(denominator > 0, concordance / denominator, np.nan)
    return Comparisons(
        a=a,
        b=b,
        item=table.item[a],
        raters_on_item=raters,
        agree2=agree2,
        pairs=pairs,
        tau=tau,
        day=np.maximum(table.day[a], table.day[b]),
    )


def subset(comparisons: Comparisons, keep: np.ndarray) -> Comparisons:
    """The comparisons where keep (a boolean array, one per comparison) is true."""
    return Comparisons(
        **{name: getattr(comparisons, name)[keep] for name in Comparisons.__dataclass_fields__}
    )


def _pair_signs(ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per ranking and completion pair (i, j): +1 if i ranks below j, -1 above, 0 tied."""
    ri, rj = ranks[:, _PAIR_I], ranks[:, _PAIR_J]
    return np.sign(ri.astype(np.int8) - rj).astype(np.int8), (ri > 0) & (rj > 0)


def agreement_rate(comparisons: Comparisons) -> float | None:
    """Pooled share of completion pairs ordered the same way; None without comparisons."""
    total = int(comparisons.pairs.sum())
    return float(comparisons.agree2.sum()) / (2 * total) if total else None


def bootstrap_interval(
    comparisons: Comparisons,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float] | None:
    """95 % percentile interval of the agreement rate, resampling items with replacement."""
    if not len(comparisons):
        return None
    _items, per_item = np.unique(comparisons.item, return_inverse=True)
    agree2 = np.bincount(per_item, weights=comparisons.agree2)
    pairs = np.bincount(per_item, weights=comparisons.pairs)
    rng = np.random.default_rng(seed)
    at_once = max(1, _BOOTSTRAP_DRAWS // len(agree2))
    rates = [
        _bootstrap_rates(rng, min(at_once, samples - start), agree2, pairs)
        for start in range(0, samples, at_once)
    ]
    low, high = np.percentile(np.concatenate(rates), [2.5, 97.5])
    return float(low), float(high)


def _bootstrap_rates(
    rng: np.random.Generator, count: int, agree2: np.ndarray, pairs: np.ndarray
) -> np.ndarray:
    """The agreement rates of `count` bootstrap samples. numpy draws the same numbers in
    blocks as in one go (a test checks), so the interval does not depend on the block size."""
    n = len(agree2)
    # Each row: n items drawn with replacement. As uint32, half the memory of the default
    # int64: below 2**32 items numpy draws the same numbers for either (a test checks).
    drawn = rng.integers(0, n, size=(count, n), dtype=np.uint32)
    return agree2[drawn].sum(axis=1) / (2 * pairs[drawn].sum(axis=1))


def mean_tau(comparisons: Comparisons) -> float | None:
    defined = comparisons.tau[~np.isnan(comparisons.tau)]
    return float(defined.mean()) if len(defined) else None


def krippendorff_alpha_ordinal(table: RankingTable, comparisons: Comparisons) -> float | None:
    """Krippendorff's alpha with the ordinal metric; None when nothing is pairable."""
    if not len(comparisons):
        return None
    ra, rb = table.ranks[comparisons.a], table.ranks[comparisons.b]
    ok = ra > 0
    # Each pair of values in a unit of m coders adds 1/(m-1) to the coincidence matrix, both ways.
    weight = np.broadcast_to((1.0 / (comparisons.raters_on_item - 1))[:, None], ra.shape)[ok]
    va, vb = ra[ok].astype(np.int64), rb[ok].astype(np.int64)
    size = MAX_K + 1
    cells = np.bincount(va * size + vb, weights=weight, minlength=size * size)
    cells += np.bincount(vb * size + va, weights=weight, minlength=size * size)
    coincidences = cells.reshape(size, size)
    n_value = coincidences.sum(axis=1)
    n = n_value.sum()
    # Ordinal distance: (n_c + ... + n_k - (n_c + n_k) / 2)^2 over the values between c and k.
    cumulative = np.cumsum(n_value)
    c, k = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    low, high = np.minimum(c, k), np.maximum(c, k)
    between = cumulative[high] - cumulative[low] + n_value[low]
    distance = (between - (n_value[c] + n_value[k]) / 2) ** 2
    expected = (np.outer(n_value, n_value) * distance).sum()
    if expected == 0:
        return None
    observed = (coincidences * distance).sum()
    return float(1 - (n - 1) * observed / expected)


@dataclass(frozen=True)
class LabelerAgreement:
    labeler: int
    rate: float | None
    comparisons: int
    tau: float | None


def per_labeler(table: RankingTable, comparisons: Comparisons) -> list[LabelerAgreement]:
    """Each labeler's agreement with everyone else who ranked the same items."""
    labelers, index = np.unique(table.labeler, return_inverse=True)
    both = np.concatenate([index[comparisons.a], index[comparisons.b]])
    groups = _grouped(both, len(labelers), comparisons, repeat=2)
    return [LabelerAgreement(int(labelers[g]), *row) for g, row in enumerate(groups)]


@dataclass(frozen=True)
class PairAgreement:
    labeler_a: int
    labeler_b: int
    rate: float | None
    comparisons: int
    tau: float | None


def per_labeler_pair(table: RankingTable, comparisons: Comparisons) -> list[PairAgreement]:
    """Agreement and mean Kendall's tau for each pair of labelers with items in common."""
    if not len(comparisons):
        return []
    la, lb = table.labeler[comparisons.a], table.labeler[comparisons.b]
    pairs = np.stack([np.minimum(la, lb), np.maximum(la, lb)], axis=1)
    keys, index = np.unique(pairs, axis=0, return_inverse=True)
    groups = _grouped(index.ravel(), len(keys), comparisons, repeat=1)
    return [PairAgreement(int(keys[g, 0]), int(keys[g, 1]), *row) for g, row in enumerate(groups)]


@dataclass(frozen=True)
class DayAgreement:
    day: np.datetime64
    rate: float | None
    comparisons: int


def per_day(comparisons: Comparisons) -> list[DayAgreement]:
    """Agreement by the day the second ranking of each comparison came in."""
    days, index = np.unique(comparisons.day, return_inverse=True)
    groups = _grouped(index, len(days), comparisons, repeat=1)
    return [DayAgreement(days[g], rate, count) for g, (rate, count, _tau) in enumerate(groups)]


def _grouped(
    group: np.ndarray, size: int, comparisons: Comparisons, repeat: int
) -> list[tuple[float | None, int, float | None]]:
    """(agreement rate, comparisons, mean tau) per group; `group` holds one group number per
    comparison, the list of comparisons repeated `repeat` times."""
    tau = np.tile(comparisons.tau, repeat)
    has_tau = ~np.isnan(tau)
    agree2 = np.bincount(group, np.tile(comparisons.agree2, repeat), size)
    pairs = np.bincount(group, np.tile(comparisons.pairs, repeat), size)
    count = np.bincount(group, minlength=size)
    tau_sum = np.bincount(group[has_tau], tau[has_tau], size)
    tau_count = np.bincount(group[has_tau], minlength=size)
    return [
        (
            float(agree2[g] / (2 * pairs[g])) if pairs[g] else None,
            int(count[g]),
            float(tau_sum[g] / tau_count[g]) if tau_count[g] else None,
        )
        for g in range(size)
    ]


@dataclass(frozen=True)
class AgreementSummary:
    rate: float | None
    interval: tuple[float, float] | None
    alpha: float | None
    tau: float | None
    comparisons: int
    completion_pairs: int
    items_compared: int
    rankings: int


def summarize(table: RankingTable, comparisons: Comparisons) -> AgreementSummary:
    return AgreementSummary(
        rate=agreement_rate(comparisons),
        interval=bootstrap_interval(comparisons),
        alpha=krippendorff_alpha_ordinal(table, comparisons),
        tau=mean_tau(comparisons),
        comparisons=len(comparisons),
        completion_pairs=int(comparisons.pairs.sum()),
        items_compared=len(np.unique(comparisons.item)),
        rankings=len(table),
    )
