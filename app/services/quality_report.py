"""The data-quality report of a project: loads work from the database into arrays and hands
them to the pure statistics in agreement.py and labeler_stats.py."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from app.models import Completion, Item, Project, Ranking, RankingEntry, Task, User
from app.schemas.quality import StatsFilter
from app.services import agreement, gold, groups, labeler_stats, pace
from app.services.labeler_stats import FLAG_NAMES


@dataclass(frozen=True)
class LabelerRow:
    """One labeler's line in the report: agreement with the others and how they work."""

    labeler_id: int
    username: str
    agreement: float | None
    comparisons: int
    tau: float | None
    submitted: int
    skipped: int
    skip_rate: float | None
    median_seconds: float | None
    rankings: int
    all_bad_share: float | None
    flag_rates: dict[str, float | None]
    gold_agreement: float | None  # pairwise agreement with the researchers on gold items
    gold_rankings: int


@dataclass(frozen=True)
class GoldDay:
    """A labeler's agreement with the gold rankings on one day (accuracy over time)."""

    username: str
    day: np.datetime64
    agreement: float | None
    rankings: int


@dataclass(frozen=True)
class PairRow:
    labeler_a: str
    labeler_b: str
    agreement: float | None
    comparisons: int
    tau: float | None


@dataclass(frozen=True)
class GroupAgreement:
    """Agreement within a labeler group, or between two (InstructGPT: 72.6 ± 1.5 % among
    training labelers, 77.3 ± 1.3 % for held-out labelers)."""

    key: str  # training | held_out | held_out_vs_training
    title: str
    rate: float | None
    interval: tuple[float, float] | None
    comparisons: int


GROUP_COMPARISONS = (
    ("training", "Training labelers with each other", ("training", "training")),
    ("held_out", "Held-out labelers with each other", ("held_out", "held_out")),
    ("held_out_vs_training", "Held-out labelers with training labelers", ("held_out", "training")),
)


@dataclass(frozen=True)
class QualityReport:
    project_id: int
    filters: StatsFilter
    summary: agreement.AgreementSummary
    groups: list[GroupAgreement]
    labelers: list[LabelerRow]
    pairs: list[PairRow]
    agreement_by_day: list[agreement.DayAgreement]
    throughput: list[labeler_stats.DayCount]
    time_histogram: list[labeler_stats.TimeBin]
    gold_by_day: list[GoldDay]
    too_fast: list[pace.TooFastLabeler]  # up for review (all time, whatever the window)


def project_report(session: Session, project: Project, filters: StatsFilter) -> QualityReport:
    table, flags = load_rankings(session, project.id, filters)
    tasks = load_tasks(session, project.id, filters)
    comparisons = agreement.compare(table)
    agreeing = {a.labeler: a for a in agreement.per_labeler(table, comparisons)}
    activity = {a.labeler: a for a in labeler_stats.per_labeler(tasks, flags)}
    with_gold, by_day = _gold_accuracy(session, project, filters)
    names = _usernames(session, set(agreeing) | set(activity) | set(with_gold))
    labelers = [
        _labeler_row(
            labeler_id,
            names[labeler_id],
            agreeing.get(labeler_id),
            activity[labeler_id],
            with_gold.get(labeler_id),
        )
        for labeler_id in sorted(activity, key=lambda i: names[i])
    ]
    pairs = [
        PairRow(names[p.labeler_a], names[p.labeler_b], p.rate, p.comparisons, p.tau)
        for p in agreement.per_labeler_pair(table, comparisons)
    ]
    return QualityReport(
        project_id=project.id,
        filters=filters,
        summary=agreement.summarize(table, comparisons),
        groups=_group_agreement(session, table, comparisons),
        labelers=labelers,
        pairs=sorted(pairs, key=lambda p: (-p.comparisons, p.labeler_a, p.labeler_b)),
        agreement_by_day=agreement.per_day(comparisons),
        throughput=labeler_stats.throughput_per_day(tasks),
        time_histogram=labeler_stats.time_histogram(tasks),
        gold_by_day=sorted(
            (GoldDay(names[i], d.day, d.rate, d.comparisons) for i, d in by_day),
            key=lambda g: (g.username, g.day),
        ),
        too_fast=pace.labelers_to_review(session, project),
    )


def _gold_accuracy(
    session: Session, project: Project, filters: StatsFilter
) -> tuple[dict[int, agreement.LabelerAgreement], list[tuple[int, agreement.DayAgreement]]]:
    """Each labeler's agreement with the gold rankings: overall, and per day."""
    table, _flags = load_rankings(session, project.id, filters, ("gold",))
    answers = gold.answers(session, {int(i) for i in np.unique(table.item)})
    combined, comparisons = gold.with_gold(table, answers)
    overall = {
        a.labeler: a
        for a in agreement.per_labeler(combined, comparisons)
        if a.labeler != gold.GOLD_LABELER
    }
    first = combined.labeler[comparisons.a]
    second = combined.labeler[comparisons.b]
    by_day = [
        (labeler_id, day)
        for labeler_id in overall
        for day in agreement.per_day(
            agreement.subset(comparisons, (first == labeler_id) | (second == labeler_id))
        )
    ]
    return overall, by_day


def _group_agreement(
    session: Session, table: agreement.RankingTable, comparisons: agreement.Comparisons
) -> list[GroupAgreement]:
    group_of = groups.groups_of(session, {int(i) for i in np.unique(table.labeler)})
    group_a = np.array([group_of.get(int(i)) for i in table.labeler[comparisons.a]], dtype=object)
    group_b = np.array([group_of.get(int(i)) for i in table.labeler[comparisons.b]], dtype=object)
    result = []
    for key, title, (first, second) in GROUP_COMPARISONS:
        keep = ((group_a == first) & (group_b == second)) | (
            (group_a == second) & (group_b == first)
        )
        chosen = agreement.subset(comparisons, keep.astype(bool))
        result.append(
            GroupAgreement(
                key=key,
                title=title,
                rate=agreement.agreement_rate(chosen),
                interval=agreement.bootstrap_interval(chosen),
                comparisons=len(chosen),
            )
        )
    return result


def _labeler_row(
    labeler_id: int,
    username: str,
    agrees: agreement.LabelerAgreement | None,
    works: labeler_stats.LabelerActivity,
    with_gold: agreement.LabelerAgreement | None,
) -> LabelerRow:
    return LabelerRow(
        labeler_id=labeler_id,
        username=username,
        agreement=agrees.rate if agrees else None,
        comparisons=agrees.comparisons if agrees else 0,
        tau=agrees.tau if agrees else None,
        submitted=works.submitted,
        skipped=works.skipped,
        skip_rate=works.skip_rate,
        median_seconds=works.median_seconds,
        rankings=works.rankings,
        all_bad_share=works.all_bad_share,
        flag_rates=works.flag_rates,
        gold_agreement=with_gold.rate if with_gold else None,
        gold_rankings=with_gold.comparisons if with_gold else 0,
    )


def _usernames(session: Session, ids: set[int]) -> dict[int, str]:
    rows = session.execute(select(User.id, User.username).where(User.id.in_(ids)))
    return {user_id: username for user_id, username in rows}


def _window(column: Any, filters: StatsFilter) -> list[ColumnElement[bool]]:
    conditions = []
    if filters.since:
        conditions.append(column >= datetime.combine(filters.since, time.min))
    if filters.until:
        conditions.append(column < datetime.combine(filters.until + timedelta(days=1), time.min))
    return conditions


# The report covers labelers' work, gold items included; screening items are candidates'.
LABELER_PURPOSES = ("work", "gold")


def _ranking_conditions(
    project_id: int, filters: StatsFilter, purposes: tuple[str, ...]
) -> list[ColumnElement[bool]]:
    conditions = [
        Item.project_id == project_id,
        Item.purpose.in_(purposes),
        *_window(Ranking.created_at, filters),
    ]
    if filters.labeler_ids:
        conditions.append(Ranking.labeler_id.in_(filters.labeler_ids))
    return conditions


def load_rankings(
    session: Session,
    project_id: int,
    filters: StatsFilter,
    purposes: tuple[str, ...] = LABELER_PURPOSES,
) -> tuple[agreement.RankingTable, labeler_stats.RankingFlags]:
    """The project's submitted rankings in the window, as arrays (ranks by completion position),
    on items of these purposes."""
    conditions = _ranking_conditions(project_id, filters, purposes)
    rankings = session.execute(
        select(Ranking.id, Ranking.item_id, Ranking.labeler_id, Ranking.created_at, Ranking.all_bad)
        .join(Item, Item.id == Ranking.item_id)
        .where(*conditions)
        .order_by(Ranking.id)
    ).all()
    entries = session.execute(
        select(
            RankingEntry.ranking_id,
            Completion.position,
            RankingEntry.rank,
            *(getattr(RankingEntry, flag) for flag in FLAG_NAMES),
        )
        .join(Completion, Completion.id == RankingEntry.completion_id)
        .join(Ranking, Ranking.id == RankingEntry.ranking_id)
        .join(Item, Item.id == Ranking.item_id)
        .where(*conditions)
    ).all()

    ids = np.array([r.id for r in rankings], dtype=np.int64)
    ranks = np.zeros((len(rankings), agreement.MAX_K), dtype=np.int8)
    flagged = np.zeros((len(rankings), len(FLAG_NAMES)), dtype=np.int64)
    judged = np.zeros(len(rankings), dtype=np.int64)
    if entries:
        entry_array = np.array([tuple(e) for e in entries], dtype=np.int64)
        row = np.searchsorted(ids, entry_array[:, 0])
        ranks[row, entry_array[:, 1]] = entry_array[:, 2]
        np.add.at(judged, row, 1)
        np.add.at(flagged, row, entry_array[:, 3:])
    labelers = np.array([r.labeler_id for r in rankings], dtype=np.int64)
    table = agreement.RankingTable(
        item=np.array([r.item_id for r in rankings], dtype=np.int64),
        labeler=labelers,
        ranks=ranks,
        day=np.array([r.created_at for r in rankings], dtype="M8[D]"),
    )
    flags = labeler_stats.RankingFlags(
        labeler=labelers,
        all_bad=np.array([r.all_bad for r in rankings], dtype=bool),
        judged=judged,
        flagged=flagged,
    )
    return table, flags


def load_tasks(session: Session, project_id: int, filters: StatsFilter) -> labeler_stats.TaskTable:
    """Tasks of any kind finished (submitted or skipped) in the window."""
    conditions = [
        Item.project_id == project_id,
        Item.purpose.in_(LABELER_PURPOSES),
        Task.state.in_(("submitted", "skipped")),
        *_window(Task.finished_at, filters),
    ]
    if filters.labeler_ids:
        conditions.append(Task.labeler_id.in_(filters.labeler_ids))
    rows = session.execute(
        select(Task.labeler_id, Task.state, Task.served_at, Task.finished_at)
        .join(Item, Item.id == Task.item_id)
        .where(*conditions)
    ).all()
    skipped = np.array([r.state == "skipped" for r in rows], dtype=bool)
    seconds = np.array(
        [(r.finished_at - r.served_at).total_seconds() for r in rows], dtype=np.float64
    )
    return labeler_stats.TaskTable(
        labeler=np.array([r.labeler_id for r in rows], dtype=np.int64),
        skipped=skipped,
        seconds=np.where(skipped, np.nan, seconds),
        day=np.array([r.finished_at for r in rows], dtype="M8[D]"),
    )
