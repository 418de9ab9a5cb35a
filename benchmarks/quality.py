"""Benchmark of the data-quality statistics (not a test): prints timings and peak memory.

Generates 100k rankings (K = 4..9, 500 labelers, 10 % of items ranked by two labelers) and
100k prompts, then times every agreement statistic on the rankings, the deduplication of
the prompts, and the split check over those prompts stored in a SQLite database (one author
per 20 prompts, splits assigned by the app's own service). Targets: agreement < 2 s,
dedup < 5 s, split check < 1 s.

    .venv/bin/python benchmarks/quality.py [--rankings 100000] [--prompts 100000]
"""

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from app.db import Database
from app.migrate import upgrade
from app.models import Prompt
from app.schemas.admin import ProjectSettingsIn
from app.services import agreement, hygiene, labeler_stats, projects, splits
from app.services.overlap import is_overlap

WORDS = [
    "the",
    "a",
    "write",
    "explain",
    "list",
    "summarize",
    "poem",
    "story",
    "why",
    "how",
    "what",
    "river",
    "cat",
    "data",
    "model",
]


def make_rankings(count: int, labelers: int, seed: int = 0) -> agreement.RankingTable:
    rng = np.random.default_rng(seed)
    items = 0
    per_item = []
    while sum(per_item) < count:
        per_item.append(2 if is_overlap(items, 10) else 1)
        items += 1
    item = np.repeat(np.arange(items), per_item)[:count]
    k = rng.integers(4, 10, size=items)[item]
    # A shared "true" order per item, which each labeler perturbs by swapping two neighbours.
    ranks = np.zeros((count, agreement.MAX_K), dtype=np.int8)
    base = np.argsort(rng.random((items, agreement.MAX_K)), axis=1)[item]
    for row in range(count):
        order = [p for p in base[row] if p < k[row]]
        if rng.random() < 0.5:
            i = rng.integers(0, k[row] - 1)
            order[i], order[i + 1] = order[i + 1], order[i]
        ranks[row, order] = np.arange(1, k[row] + 1)
    labeler = rng.integers(0, labelers, size=count)
    # Two labelers of one item must differ.
    for row in np.flatnonzero(item[1:] == item[:-1]) + 1:
        while labeler[row] == labeler[row - 1]:
            labeler[row] = rng.integers(0, labelers)
    day = np.datetime64("2026-01-01") + rng.integers(0, 90, size=count).astype("m8[D]")
    return agreement.RankingTable(item=item, labeler=labeler, ranks=ranks, day=day)


def make_prompts(count: int, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    prompts = []
    for i in range(count):
        if i and rng.random() < 0.05:  # some near-copies of an earlier prompt
            prompts.append(prompts[rng.integers(0, i)].upper() + " please")
            continue
        words = rng.choice(WORDS, size=rng.integers(5, 60))
        prompts.append(" ".join(words) + f" #{i}")
    return prompts


def split_check_database(texts: list[str], directory: str) -> Database:
    """A SQLite database holding the prompts, their authors' splits assigned by the service."""
    url = f"sqlite:///{directory}/splits.db"
    upgrade(url)
    db = Database(url)
    with db.session() as session:
        project = projects.create_project(session, ProjectSettingsIn(name="split check"))
        for start in range(0, len(texts), 10_000):
            batch = [
                Prompt(
                    project_id=project.id,
                    kind="plain",
                    category="other",
                    language="en",
                    instruction=text,
                    author_key=splits.author_key(external_user_id=f"u{n // 20}"),
                )
                for n, text in enumerate(texts[start : start + 10_000], start=start)
            ]
            splits.place(session, project, batch)
            session.add_all(batch)
            session.commit()
            session.expunge_all()
    return db


def timed(label: str, function: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - start
    print(f"  {label:<44} {seconds:7.3f} s")
    return result, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rankings", type=int, default=100_000)
    parser.add_argument("--prompts", type=int, default=100_000)
    parser.add_argument("--labelers", type=int, default=500)
    args = parser.parse_args()

    print(f"Generating {args.rankings} rankings and {args.prompts} prompts...")
    table = make_rankings(args.rankings, args.labelers)
    prompts = make_prompts(args.prompts)
    n = len(table)
    tasks = labeler_stats.TaskTable(
        labeler=table.labeler,
        skipped=np.zeros(n, dtype=bool),
        seconds=np.random.default_rng(2).lognormal(4, 1, size=n),
        day=table.day,
    )
    flags = labeler_stats.RankingFlags(
        labeler=table.labeler,
        all_bad=np.zeros(n, dtype=bool),
        judged=(table.ranks > 0).sum(axis=1),
        flagged=np.zeros((n, len(labeler_stats.FLAG_NAMES)), dtype=np.int64),
    )

    print("Agreement statistics:")
    total = 0.0
    comparisons, seconds = timed(
        "pair up rankings of the same item", lambda: agreement.compare(table)
    )
    total += seconds
    steps = {
        "pairwise agreement": lambda: agreement.agreement_rate(comparisons),
        "bootstrap 95 % interval (1000 resamples)": lambda: agreement.bootstrap_interval(
            comparisons
        ),
        "Krippendorff's alpha (ordinal)": lambda: agreement.krippendorff_alpha_ordinal(
            table, comparisons
        ),
        "mean Kendall's tau": lambda: agreement.mean_tau(comparisons),
        "per labeler agreement": lambda: agreement.per_labeler(table, comparisons),
        "per labeler pair": lambda: agreement.per_labeler_pair(table, comparisons),
        "agreement per day": lambda: agreement.per_day(comparisons),
        "labeler activity (time, skips, flags)": lambda: labeler_stats.per_labeler(tasks, flags),
        "throughput and time histogram": lambda: (
            labeler_stats.throughput_per_day(tasks),
            labeler_stats.time_histogram(tasks),
        ),
    }
    results = {}
    for label, step in steps.items():
        results[label], seconds = timed(label, step)
        total += seconds
    print(f"  {'all agreement statistics':<44} {total:7.3f} s   (target < 2 s)")

    print("Prompt hygiene:")
    duplicates, _ = timed(
        f"dedup of {len(prompts)} prompts (target < 5 s)",
        lambda: hygiene.find_duplicates(prompts, min_prefix=100, percent=90),
    )

    print("Splits:")
    with tempfile.TemporaryDirectory() as directory:
        db = split_check_database(prompts, directory)
        with db.session(write=False) as session:
            [report], _ = timed(
                f"split check of {len(prompts)} prompts (target < 1 s)",
                lambda: splits.check(session),
            )
        db.dispose()
    print(f"  {sum(report.authors.values())} authors, ok: {report.ok}")

    # Memory is measured in a second, untimed pass: tracing allocations slows Python code.
    tracemalloc.start()
    comparisons = agreement.compare(table)
    for step in steps.values():
        step()
    _, agreement_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    hygiene.find_duplicates(prompts, min_prefix=100, percent=90)
    _, dedup_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    rate = results["pairwise agreement"]
    alpha = results["Krippendorff's alpha (ordinal)"]
    low, high = results["bootstrap 95 % interval (1000 resamples)"]
    print(
        f"Results: {len(comparisons)} comparisons, agreement {rate:.1%} "
        f"({low:.1%} to {high:.1%}), alpha {alpha:.3f}, "
        f"{len(duplicates)} duplicate prompts"
    )
    print(
        f"Peak traced memory: agreement {agreement_peak / 2**20:.1f} MiB, "
        f"dedup {dedup_peak / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    main()
