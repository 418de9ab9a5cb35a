"""How each labeler works: pace, skips, "all bad" and flag rates, throughput. Pure numpy.

The database side (app/services/quality_report.py) fills the tables below; these functions only
count, so they are cheap to test and to benchmark.
"""

from dataclasses import dataclass

import numpy as np

FLAG_NAMES = ("fails_instruction", "hallucination", "harmful", "sexual_or_violent")

# Upper edges, in seconds, of the time-per-task histogram's bins (the last bin is open).
TIME_BIN_EDGES_S = (5, 10, 20, 30, 60, 120, 300, 600, 1200)


@dataclass(frozen=True)
class TaskTable:
    """Finished tasks (submitted or skipped), one row each. seconds is NaN for skips."""

    labeler: np.ndarray
    skipped: np.ndarray
    seconds: np.ndarray
    day: np.ndarray  # datetime64[D] the task finished


@dataclass(frozen=True)
class RankingFlags:
    """Submitted rankings: whether all answers were bad, and how many completions were judged
    and flagged (flagged[:, f] counts completions with FLAG_NAMES[f])."""

    labeler: np.ndarray
    all_bad: np.ndarray
    judged: np.ndarray
    flagged: np.ndarray


@dataclass(frozen=True)
class LabelerActivity:
    labeler: int
    submitted: int
    skipped: int
    skip_rate: float | None
    median_seconds: float | None
    rankings: int
    all_bad_share: float | None
    flag_rates: dict[str, float | None]


def per_labeler(tasks: TaskTable, rankings: RankingFlags) -> list[LabelerActivity]:
    labelers = np.union1d(tasks.labeler, rankings.labeler).astype(np.int64)
    task_group = np.searchsorted(labelers, tasks.labeler)
    ranking_group = np.searchsorted(labelers, rankings.labeler)
    size = len(labelers)
    skipped = np.bincount(task_group, weights=tasks.skipped, minlength=size).astype(int)
    finished = np.bincount(task_group, minlength=size)
    ranked = np.bincount(ranking_group, minlength=size)
    all_bad = np.bincount(ranking_group, weights=rankings.all_bad, minlength=size)
    judged = np.bincount(ranking_group, weights=rankings.judged, minlength=size)
    flagged = [
        np.bincount(ranking_group, weights=rankings.flagged[:, f], minlength=size)
        for f in range(len(FLAG_NAMES))
    ]
    medians = _medians(task_group, tasks.seconds, size)
    return [
        LabelerActivity(
            labeler=int(labelers[g]),
            submitted=int(finished[g] - skipped[g]),
            skipped=int(skipped[g]),
            skip_rate=_share(skipped[g], finished[g]),
            median_seconds=medians[g],
            rankings=int(ranked[g]),
            all_bad_share=_share(all_bad[g], ranked[g]),
            flag_rates={
                name: _share(flagged[f][g], judged[g]) for f, name in enumerate(FLAG_NAMES)
            },
        )
        for g in range(size)
    ]


def _medians(group: np.ndarray, values: np.ndarray, size: int) -> list[float | None]:
    """Median of the non-NaN values of each group, by one sort instead of a loop of filters."""
    keep = ~np.isnan(values)
    group, values = group[keep], values[keep]
    order = np.lexsort((values, group))
    group, values = group[order], values[order]
    starts = np.searchsorted(group, np.arange(size), side="left")
    ends = np.searchsorted(group, np.arange(size), side="right")
    medians: list[float | None] = []
    for start, end in zip(starts, ends, strict=True):
        if start == end:
            medians.append(None)
            continue
        middle = (start + end - 1) / 2
        medians.append(float((values[int(np.floor(middle))] + values[int(np.ceil(middle))]) / 2))
    return medians


def _share(part: float, whole: float) -> float | None:
    return float(part) / float(whole) if whole else None


@dataclass(frozen=True)
class DayCount:
    day: np.datetime64
    submitted: int
    skipped: int


def throughput_per_day(tasks: TaskTable) -> list[DayCount]:
    days, index = np.unique(tasks.day, return_inverse=True)
    skipped = np.bincount(index, weights=tasks.skipped, minlength=len(days)).astype(int)
    total = np.bincount(index, minlength=len(days))
    return [
        DayCount(days[g], int(total[g] - skipped[g]), int(skipped[g])) for g in range(len(days))
    ]


@dataclass(frozen=True)
class TimeBin:
    label: str
    count: int


def time_histogram(tasks: TaskTable) -> list[TimeBin]:
    """Submitted tasks by time spent, in bins whose width grows with the time."""
    seconds = tasks.seconds[~np.isnan(tasks.seconds)]
    counts = np.bincount(
        np.searchsorted(TIME_BIN_EDGES_S, seconds, side="right"),
        minlength=len(TIME_BIN_EDGES_S) + 1,
    )
    lows = (0, *TIME_BIN_EDGES_S)
    labels = [
        f"{_duration(low)} to {_duration(high)}"
        for low, high in zip(lows, TIME_BIN_EDGES_S, strict=False)
    ]
    labels.append(f"≥ {_duration(TIME_BIN_EDGES_S[-1])}")
    return [TimeBin(label, int(count)) for label, count in zip(labels, counts, strict=True)]


def _duration(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"
