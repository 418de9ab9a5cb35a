"""Export and import throughput, and the export's peak memory (a benchmark, not a test).

    .venv/bin/python benchmarks/export.py --rankings 100000 --db sqlite
    .venv/bin/python benchmarks/export.py --rankings 1000000 --db both

Fills a fresh database (harness.throwaway_database: SQLite in a temporary directory;
PostgreSQL in a new database on the server named by RANKERY_TEST_POSTGRES_URL, or on a
throwaway server) with N ranking records (K = 4..9 completions each, 200 labelers; every
OVERLAP_EVERY-th ranking is a second labeler's ranking of the item before, as the project's
overlap share makes them, the others one prompt each, 50 prompts per author), then exports it
to JSONL and to Parquet, --repeat times each, each export in a child process so that its peak
RSS is its own. Prints the median records/s (this machine's timings vary from run to run), the
peak RSS and the CPU the median export used: its own process's, and the whole machine's (the
export and, on a local server, PostgreSQL; with as many cores busy as the machine has, the
export is bound by CPU rather than by waiting); then times the completions JSONL import of
100k completions. With --min-labeler-agreement the exports also filter labelers by agreement
(which reads the rankings of every item ranked twice first).
"""

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.db import Database  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.models import (  # noqa: E402
    Completion,
    Item,
    Project,
    Prompt,
    Ranking,
    RankingEntry,
    Slot,
    SplitAssignment,
    Task,
    User,
)
from app.runtime import freeze_startup_heap  # noqa: E402
from app.schemas.export import SPLITS  # noqa: E402
from app.services.splits import choose_split  # noqa: E402
from benchmarks.harness import machine_busy_seconds, throwaway_database  # noqa: E402

CHUNK = 10_000
LEASE_END = datetime(2026, 1, 1)
PROMPTS_PER_AUTHOR = 50
LABELERS = 200
OVERLAP_EVERY = 10
WORDS = [
    "the", "of", "model", "answer", "prompt", "human",
    "feedback", "rank", "better", "worse", "helpful", "honest",
]  # fmt: skip


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def fill(url: str, rankings: int, seed: int = 1) -> None:
    """N prompts, items, slots, tasks and rankings, and K completions and entries per ranking."""
    rng = random.Random(seed)
    engine = Database(url).engine
    with engine.begin() as conn:
        conn.execute(sa.insert(Project), [{"id": 1, "name": "bench", "guidelines": ""}])
        conn.execute(
            sa.insert(User),
            [
                {"id": i, "username": f"labeler{i}", "password_hash": "!", "role": "labeler"}
                for i in range(1, LABELERS + 1)
            ],
        )
        authors = (rankings + PROMPTS_PER_AUTHOR - 1) // PROMPTS_PER_AUTHOR
        counts = dict.fromkeys(SPLITS, 0)
        ratios = {"train": 0.8, "validation": 0.1, "test": 0.1}
        split_of = []
        for _ in range(authors):
            split_of.append(choose_split(ratios, counts))
            counts[split_of[-1]] += 1
        _insert(
            conn,
            SplitAssignment,
            (
                {"project_id": 1, "author_key": f"ext:a{a}", "split": split_of[a]}
                for a in range(authors)
            ),
        )
    completion_id = 0
    ids: list[int] = []
    for start in range(0, rankings, CHUNK):
        rows: dict[type, list[dict]] = {m: [] for m in (Prompt, Item, Slot, Task, Ranking)}
        completions, entries = [], []
        for n in range(start + 1, min(start + CHUNK, rankings) + 1):
            author = (n - 1) // PROMPTS_PER_AUTHOR
            labeler = rng.randint(1, LABELERS)
            if n % OVERLAP_EVERY == 0 and n - 1 > start:
                # A second labeler's ranking of the item before (its own slot and task).
                item = n - 1  # and the same completions, `ids`
                labeler = rows[Ranking][-1]["labeler_id"] % LABELERS + 1
                index = 1
            else:
                item, index = n, 0
                k = rng.randint(4, 9)
                rows[Prompt].append(
                    {
                        "id": n,
                        "project_id": 1,
                        "external_user_id": f"a{author}",
                        "author_key": f"ext:a{author}",
                        "split": split_of[author],
                        "kind": "plain",
                        "category": "open_qa",
                        "language": "en",
                        "instruction": text(rng, 20),
                    }
                )
                rows[Item].append({"id": n, "project_id": 1, "prompt_id": n, "kind": "ranking"})
                ids = list(range(completion_id + 1, completion_id + k + 1))
                completion_id += k
                for position, cid in enumerate(ids):
                    completions.append(
                        {
                            "id": cid,
                            "item_id": n,
                            "position": position,
                            "text": text(rng, 40),
                            "model_name": "m",
                        }
                    )
            rows[Slot].append(
                {"id": n, "item_id": item, "index": index, "state": "done", "labeler_id": labeler}
            )
            rows[Task].append(
                {
                    "id": n,
                    "item_id": item,
                    "slot_id": n,
                    "labeler_id": labeler,
                    "state": "submitted",
                    "completion_order": ids,
                    "lease_expires_at": LEASE_END,
                }
            )
            rows[Ranking].append(
                {
                    "id": n,
                    "task_id": n,
                    "item_id": item,
                    "labeler_id": labeler,
                    "time_spent_ms": 30_000,
                }
            )
            ranks = list(range(1, len(ids) + 1))
            rng.shuffle(ranks)
            for cid, rank in zip(ids, ranks, strict=True):
                entries.append(
                    {
                        "ranking_id": n,
                        "completion_id": cid,
                        "rank": rank,
                        "quality": rng.randint(1, 7),
                    }
                )
        with engine.begin() as conn:
            for model, batch in rows.items():
                conn.execute(sa.insert(model), batch)
            conn.execute(sa.insert(Completion), completions)
            conn.execute(sa.insert(RankingEntry), entries)
    if engine.dialect.name == "postgresql":
        # The rows above came with their ids: move the id sequences past them.
        with engine.begin() as conn:
            for model in (Prompt, Item, Slot, Task, Ranking, Completion, RankingEntry, User):
                table = model.__tablename__
                conn.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT coalesce(max(id), 1) FROM {table}))"
                    )
                )
    engine.dispose()


def _insert(conn, model, rows) -> None:  # type: ignore[no-untyped-def]
    rows = list(rows)
    for start in range(0, len(rows), CHUNK):
        conn.execute(sa.insert(model), rows[start : start + CHUNK])


def settle(url: str) -> None:
    """PostgreSQL: vacuum and analyze the fresh data, as autovacuum would have done in a
    database in use (and would otherwise do in the middle of the first export)."""
    if not url.startswith("postgresql"):
        return
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE)")
    engine.dispose()


def export_in_child(url: str, data_dir: Path, fmt: str, min_agreement: float | None) -> dict:
    """Run one export in a fresh process; returns its figures."""
    result = subprocess.run(
        [sys.executable, __file__, "--child-export", url, str(data_dir), fmt, str(min_agreement)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def child_export(url: str, data_dir: str, fmt: str, min_agreement: str) -> None:
    from app.schemas.snapshot import ExportRequest
    from app.services import exports

    settings = Settings(database_url=url, data_dir=Path(data_dir), secret_key="bench")
    db = Database(url)
    with db.session() as session:
        request = ExportRequest(
            format=fmt,  # type: ignore[arg-type]
            max_prompts_per_author=None,
            min_labeler_agreement=None if min_agreement == "None" else float(min_agreement),
        )
        snapshot = exports.request_snapshot(session, settings, request)
    freeze_startup_heap()  # as `rankery export` and the server do
    started, cpu_started, busy_started = (
        time.perf_counter(), time.process_time(), machine_busy_seconds()
    )  # fmt: skip
    snapshot = exports.run_snapshot(db, settings, snapshot.id)
    seconds = time.perf_counter() - started
    cpu, busy = time.process_time() - cpu_started, machine_busy_seconds() - busy_started
    assert snapshot.state == "done", snapshot.error
    counts = snapshot.counts or {}
    suffix = ".parquet" if fmt == "parquet" else ".jsonl"
    records = sum(v for k, v in counts.items() if k.endswith(suffix))
    rm = sum(v for k, v in counts.items() if k.startswith("rm.") and k.endswith(suffix))
    peak_mb = peak_rss_mb()
    figures = {"seconds": seconds, "records": records, "rm": rm, "peak_rss_mb": peak_mb}
    print(json.dumps(figures | {"cpu_seconds": cpu, "machine_cpu_seconds": busy}))


def peak_rss_mb() -> float:
    """This process's own peak RSS. (Linux carries ru_maxrss across exec, so a child started
    by a big parent would report the parent's size; VmHWM belongs to this process alone.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_import(url: str, completions: int = 100_000) -> tuple[float, int]:
    from app.services import imports

    rng = random.Random(2)
    lines, total = [], 0
    while total < completions:
        k = rng.randint(4, 9)
        total += k
        prompt = {"instruction": text(rng, 20), "user_id": f"u{len(lines) % 2000}"}
        lines.append(
            json.dumps(
                {"prompt": prompt, "completions": [{"text": text(rng, 40)} for _ in range(k)]}
            )
        )
    db = Database(url)
    with db.session() as session:
        project = session.get(Project, 1)
        started = time.perf_counter()
        items = imports.import_ranking_items(
            session, project, imports.parse_jsonl("\n".join(lines))
        )
        seconds = time.perf_counter() - started
    db.dispose()
    return seconds, total if items else 0


def run(
    name: str,
    url: str,
    rankings: int,
    work: Path,
    formats: list[str],
    repeat: int,
    min_agreement: float | None,
) -> None:
    upgrade(url)
    started = time.perf_counter()
    fill(url, rankings)
    settle(url)
    print(
        f"[{name}] filled {rankings:,} rankings in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    for fmt in formats:
        runs = [
            export_in_child(url, work / f"{name}-{fmt}-{n}", fmt, min_agreement)
            for n in range(repeat)
        ]
        runs.sort(key=lambda r: r["seconds"])
        seconds = [r["seconds"] for r in runs]
        median = statistics.median(seconds)
        middle = runs[len(runs) // 2]  # the median run (the slower middle one of an even count)
        records, rm = runs[0]["records"], runs[0]["rm"]
        spread = f" (runs {seconds[0]:.1f} to {seconds[-1]:.1f} s)" if repeat > 1 else ""
        print(
            f"[{name}] export {fmt:<7}: {records:,} records ({rm:,} rm) in {median:.1f} s "
            f"= {records / median:,.0f} records/s ({rm / median:,.0f} rm records/s), median of "
            f"{repeat}{spread}; peak RSS {max(r['peak_rss_mb'] for r in runs):.0f} MB; CPU of "
            f"the median run: {middle['cpu_seconds']:.1f} s in the export's process, "
            f"{middle['machine_cpu_seconds']:.1f} s on the whole machine = "
            f"{middle['machine_cpu_seconds'] / middle['seconds']:.2f} of {os.cpu_count()} "
            "cores busy",
            flush=True,
        )
    seconds, completions = bench_import(url)
    print(
        f"[{name}] import: {completions:,} completions in {seconds:.1f} s = "
        f"{completions / seconds:,.0f} completions/s",
        flush=True,
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-export":
        child_export(*sys.argv[2:6])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rankings", type=int, default=100_000)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--format", choices=["jsonl", "parquet", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=3, help="exports of each format (median)")
    parser.add_argument("--min-labeler-agreement", type=float, help="export filter (0-1)")
    args = parser.parse_args()
    formats = ["jsonl", "parquet"] if args.format == "both" else [args.format]
    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    server = os.environ.get("RANKERY_TEST_POSTGRES_URL")
    with tempfile.TemporaryDirectory(prefix="rankery-bench-") as tmp:
        work = Path(tmp)
        for kind in databases:
            with throwaway_database(kind, work, server) as (url, _started):
                run(
                    kind,
                    url,
                    args.rankings,
                    work,
                    formats,
                    args.repeat,
                    args.min_labeler_agreement,
                )


if __name__ == "__main__":
    main()
