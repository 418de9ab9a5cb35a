"""The agreement summary of an export snapshot (manifest.json and the dataset card).

Only items that two or more of the snapshot's rankings share can show agreement, and only a
small share of items is ranked more than once (the project's overlap), so the summary loads
just those: first the ids of the overlap items (one grouped query), then their rankings and
entries a chunk of items at a time, straight into the compact arrays of agreement.py, which
computes the statistic as the quality report does. Memory grows with the overlap rankings
alone (a few bytes each), never with the snapshot.
"""

from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Completion, Prompt, Ranking, RankingEntry
from app.services import agreement
from app.services.export_records import Selection, rm_query

CHUNK = 500
STATISTIC = (
    "pairwise agreement as InstructGPT reports it: the share of completion pairs that two "
    "labelers order the same way (a tie against an order counts half), pooled over the "
    "items that two or more rankings of this snapshot share; a bootstrap 95 % interval over "
    "items; Krippendorff's alpha (ordinal) and the mean Kendall's tau-b of those rankings"
)


def summary(session: Session, selection: Selection) -> dict[str, Any]:
    """The agreement of the snapshot's rankings on the items they share."""
    table = _overlap_table(session, selection)
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


def _overlap_table(session: Session, selection: Selection) -> agreement.RankingTable:
    rankings = rm_query(selection).with_only_columns(
        Ranking.id, Ranking.item_id, Ranking.labeler_id, Ranking.created_at, Prompt.id
    )
    shared = (
        rankings.with_only_columns(Ranking.item_id)
        .group_by(Ranking.item_id)
        .having(func.count() >= 2)
        .order_by(Ranking.item_id)
    )
    connection = session.connection()
    item_ids = connection.execute(shared).scalars().all()
    parts = []
    for start in range(0, len(item_ids), CHUNK):
        chunk = item_ids[start : start + CHUNK]
        rows = [
            row
            for row in connection.execute(
                rankings.where(Ranking.item_id.in_(chunk)).order_by(Ranking.id)
            ).all()
            if row[4] not in selection.capped_prompt_ids
        ]
        if rows:
            parts.append(_part(session, rows))
    return _concatenate(parts)


def _part(session: Session, rows: list[Any]) -> agreement.RankingTable:
    """The rankings of one chunk of items, with their ranks by completion position."""
    ids = np.array([row[0] for row in rows], dtype=np.int64)
    entries = session.connection().execute(
        select(RankingEntry.ranking_id, Completion.position, RankingEntry.rank)
        .join(Completion, Completion.id == RankingEntry.completion_id)
        .where(RankingEntry.ranking_id.in_(ids.tolist()))
    )
    # Plain tuples: numpy probes a Row for array protocols, key by key, very slowly.
    found = np.array([tuple(entry) for entry in entries], dtype=np.int64).reshape(-1, 3)
    ranks = np.zeros((len(rows), agreement.MAX_K), dtype=np.int8)
    ranks[np.searchsorted(ids, found[:, 0]), found[:, 1]] = found[:, 2]
    return agreement.RankingTable(
        item=np.array([row[1] for row in rows], dtype=np.int64),
        labeler=np.array([row[2] for row in rows], dtype=np.int64),
        ranks=ranks,
        day=np.array([row[3] for row in rows], dtype="M8[D]"),
    )


def _concatenate(parts: list[agreement.RankingTable]) -> agreement.RankingTable:
    if not parts:
        return agreement.RankingTable.from_rows([])
    return agreement.RankingTable(
        **{
            name: np.concatenate([getattr(part, name) for part in parts])
            for name in ("item", "labeler", "ranks", "day")
        }
    )
