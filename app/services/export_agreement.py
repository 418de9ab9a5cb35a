"""The agreement of an export snapshot: its summary (manifest.json and the dataset card), and
the labelers its agreement filter leaves out (`labelers_below`).

Only items that two or more of the snapshot's rankings share can show agreement, and only a
small share of items is ranked more than once (the project's overlap), so the summary keeps
just those: export_records.count_records_and_overlap_items finds the overlap items before the
RM records are read, and `OverlapRankings` collects their rankings as the RM records stream by
(their ranks come with the records' completions, so nothing is read twice), straight into
compact arrays that agreement.py turns into the statistic, as the quality report does. Memory
grows with the overlap rankings alone (a few bytes each), never with the snapshot.
"""

from array import array
from datetime import date
from itertools import groupby
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Completion, Item, Ranking, RankingEntry, User
from app.schemas.snapshot import MIN_AGREEMENT_COMPARISONS
from app.services import agreement
from app.services.imports import IMPORTED_ROLE
from app.services.quality_report import LABELER_PURPOSES

STATISTIC = (
    "pairwise agreement as InstructGPT reports it: the share of completion pairs that two "
    "labelers order the same way (a tie against an order counts half), pooled over the "
    "items that two or more rankings of this snapshot share; a bootstrap 95 % interval over "
    "items; Krippendorff's alpha (ordinal) and the mean Kendall's tau-b of those rankings"
)
_EPOCH = date(1970, 1, 1).toordinal()


class OverlapRankings:
    """The rankings of the overlap items, added by rm_records in ranking id order."""

    def __init__(self, items: set[int]) -> None:
        self.items = items  # the overlap items: rm_records adds the rankings of these
        self._item = array("q")
        self._labeler = array("q")
        self._day = array("q")  # days since 1970-01-01
        self._ranks = bytearray()  # MAX_K per ranking: the rank of each completion position
        self._day_numbers: dict[date | str, int] = {}

    def add(
        self,
        item_id: int,
        labeler_id: int,
        day: date | str,
        entries: list[list[Any]],
    ) -> None:
        """One ranking: the day it came in (a date, or its ISO text from SQLite), and its
        entry rows (ranking id, rank, completion position, ...)."""
        ranks = bytearray(agreement.MAX_K)
        for entry in entries:
            ranks[entry[2]] = entry[1]
        if day not in self._day_numbers:
            as_date = date.fromisoformat(day) if isinstance(day, str) else day
            self._day_numbers[day] = as_date.toordinal() - _EPOCH
        self._item.append(item_id)
        self._labeler.append(labeler_id)
        self._day.append(self._day_numbers[day])
        self._ranks += ranks

    def table(self) -> agreement.RankingTable:
        return agreement.RankingTable(
            item=np.array(self._item, dtype=np.int64),
            labeler=np.array(self._labeler, dtype=np.int64),
            ranks=np.frombuffer(bytes(self._ranks), dtype=np.int8).reshape(-1, agreement.MAX_K),
            day=np.array(self._day, dtype=np.int64).astype("M8[D]"),
        )


def labelers_below(session: Session, project_ids: list[int], threshold: float) -> set[int]:
    """The labelers whose pairwise agreement with the others, over all their rankings of the
    projects' items (as the quality page counts it: work and gold items, any time), is below
    `threshold`, judged on MIN_AGREEMENT_COMPARISONS comparisons or more. Imported data is
    never judged (it stands for many people). Only rankings of items that two or more
    labelers ranked are read, a page at a time, into compact arrays."""
    shared_items = (
        select(Ranking.item_id)
        .join(Item, Item.id == Ranking.item_id)
        .where(Item.project_id.in_(project_ids), Item.purpose.in_(LABELER_PURPOSES))
        .group_by(Ranking.item_id)
        .having(func.count() >= 2)
    )
    entries = (
        select(
            Ranking.id,
            RankingEntry.rank,
            Completion.position,
            Ranking.item_id,
            Ranking.labeler_id,
            func.date(Ranking.created_at),
        )
        .join(RankingEntry, RankingEntry.ranking_id == Ranking.id)
        .join(Completion, Completion.id == RankingEntry.completion_id)
        .where(Ranking.item_id.in_(shared_items))
        .order_by(Ranking.id)
        .execution_options(yield_per=10_000)
    )
    overlap = OverlapRankings(set())
    for _ranking_id, rows in groupby(session.execute(entries), key=itemgetter(0)):
        ranking = list(rows)
        _, _, _, item_id, labeler_id, day = ranking[0]
        overlap.add(item_id, labeler_id, day, ranking)
    table = overlap.table()
    low = {
        judged.labeler
        for judged in agreement.per_labeler(table, agreement.compare(table))
        if judged.comparisons >= MIN_AGREEMENT_COMPARISONS
        and judged.rate is not None
        and judged.rate < threshold
    }
    people = select(User.id).where(User.id.in_(low), User.role != IMPORTED_ROLE)
    return set(session.scalars(people)) if low else set()


def summary(overlap: OverlapRankings) -> dict[str, Any]:
    """The agreement of the snapshot's rankings on the items they share."""
    table = overlap.table()
    result = agreement.summarize(table, agreement.compare(table))
    return {
        "statistic": STATISTIC,
        "rate": _rounded(result.rate),
        "interval_95": [_rounded(x) for x in result.interval] if result.interval else None,
        "krippendorff_alpha": _rounded(result.alpha),
        "kendall_tau_b": _rounded(result.tau),
        "items": result.items_compared,
        "rankings": result.rankings,
        "comparisons": result.comparisons,
        "completion_pairs": result.completion_pairs,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
