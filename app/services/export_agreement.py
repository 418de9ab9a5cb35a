"""The agreement summary of an export snapshot (manifest.json and the dataset card).

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
from typing import Any

import numpy as np

from app.services import agreement

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
