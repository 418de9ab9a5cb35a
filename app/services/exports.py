"""Export snapshots: immutable dataset directories under DATA_DIR/exports/<id>/.

A snapshot is requested (a row in `snapshots`, state "queued"), then written by `run_snapshot`
(in the background for the web app and API, in the foreground for the CLI): the records are
streamed into a temporary directory beside the final one, the dataset card, the manifest and
its checksums follow, and the directory is renamed into place at the end, so a snapshot
directory is complete or absent, never half-written. An existing snapshot is never overwritten.
A running export beats every HEARTBEAT_EVERY; one whose heartbeat is older than STALE_AFTER
(its process died: a server restart, a crash) is failed, and its temporary directory removed,
at the next look at the snapshots (and when the app starts).
On PostgreSQL the records are read in one REPEATABLE READ transaction (SQLite's read
transactions are snapshots already), so they are consistent even while labelers keep working.
"""

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import Database
from app.errors import Conflict, InvalidInput, NotFound, ServiceError
from app.models import Project, Snapshot, User
from app.models.base import utcnow
from app.schemas.export import SCHEMA_VERSION, SPLITS, Manifest, file_name
from app.schemas.snapshot import ExportRequest
from app.services import audit, dataset_card, export_agreement, export_records
from app.services.export_files import (
    FileThread,
    JsonlWriter,
    ParquetWriter,
    Writer,
    check_parquet_available,
    serialize,
    sha256,
)
from app.services.splits import ratios

log = logging.getLogger(__name__)
# Progress is recorded at most once a PROGRESS_INTERVAL (the progress bar needs no more, and
# each update is a database round trip that stalls the export's thread), judged every
# PROGRESS_CHECK_EVERY records.
PROGRESS_INTERVAL = 1.0
PROGRESS_CHECK_EVERY = 1_000
SNAPSHOT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
KIND_ORDER = ("ppo", "sft", "rm")
HEARTBEAT_EVERY = timedelta(seconds=15)
STALE_AFTER = timedelta(minutes=2)
STUCK_MESSAGE = (
    "The export stopped without finishing (the server restarted or the export crashed); "
    "its partial files were removed. Start a new snapshot."
)


def exports_dir(settings: Settings) -> Path:
    return settings.data_dir / "exports"


def snapshot_dir(settings: Settings, snapshot_id: str) -> Path:
    return exports_dir(settings) / snapshot_id


def _work_dir(settings: Settings, snapshot_id: str) -> Path:
    """Where a snapshot is written before it is renamed into place (never a snapshot id)."""
    return exports_dir(settings) / f".{snapshot_id}.partial"


# --- Requesting and finding snapshots ------------------------------------------------------------


def request_snapshot(
    session: Session,
    settings: Settings,
    request: ExportRequest,
    created_by: User | None = None,
    snapshot_id: str | None = None,
) -> Snapshot:
    """Check the request and record a queued snapshot (one commit); `run_snapshot` writes it."""
    snapshot = add_snapshot_request(session, settings, request, created_by, snapshot_id)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise _exists(snapshot.id) from None
    return snapshot


def add_snapshot_request(
    session: Session,
    settings: Settings,
    request: ExportRequest,
    created_by: User | None = None,
    snapshot_id: str | None = None,
) -> Snapshot:
    """`request_snapshot` without the commit, for a unit of work that makes a snapshot along
    with something else (a training job that trains on it)."""
    export_records.check_request(session, request)
    if request.format != "jsonl":
        check_parquet_available()
    now = utcnow()
    snapshot_id = snapshot_id or f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
    if not SNAPSHOT_ID.fullmatch(snapshot_id):
        raise InvalidInput(
            "A snapshot id is 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    if snapshot_dir(settings, snapshot_id).exists() or session.get(Snapshot, snapshot_id):
        raise _exists(snapshot_id)
    snapshot = Snapshot(
        id=snapshot_id,
        created_by_id=created_by.id if created_by else None,
        created_at=now,
        state="queued",
        request=request.model_dump(mode="json"),
    )
    session.add(snapshot)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise _exists(snapshot_id) from None
    audit.record(session, created_by, "export.requested", snapshot, after=snapshot.request)
    return snapshot


def _exists(snapshot_id: str) -> Conflict:
    return Conflict(
        f"A snapshot {snapshot_id!r} exists already. Snapshots are never overwritten: "
        "make a new one with another id."
    )


def list_snapshots(session: Session) -> list[Snapshot]:
    return list(session.scalars(select(Snapshot).order_by(Snapshot.created_at.desc())))


def _stuck(now: Any) -> Any:
    cutoff = now - STALE_AFTER
    beat = Snapshot.heartbeat_at
    return or_(
        and_(Snapshot.state == "running", or_(beat.is_(None), beat < cutoff)),
        # Background exports that never started: the process that queued them is gone.
        and_(Snapshot.state == "queued", Snapshot.created_at < cutoff),
    )


def fail_stuck_snapshots(db: Database, settings: Settings) -> list[str]:
    """Fail the snapshots that stopped beating and remove their temporary directories; their
    ids. Reads first, so that looking at the snapshots writes nothing when none are stuck."""
    with db.session(write=False) as session:
        stuck = list(session.scalars(select(Snapshot.id).where(_stuck(utcnow()))))
    if not stuck:
        return []
    with db.session() as session:
        now = utcnow()
        failed = list(
            session.scalars(
                update(Snapshot)
                .where(Snapshot.id.in_(stuck), _stuck(now))
                .values(state="failed", error=STUCK_MESSAGE, finished_at=now)
                .returning(Snapshot.id)
            )
        )
        session.commit()
    for snapshot_id in failed:
        log.warning("export %s stopped beating: marked failed", snapshot_id)
        shutil.rmtree(_work_dir(settings, snapshot_id), ignore_errors=True)
    return failed


def get_snapshot(session: Session, snapshot_id: str) -> Snapshot:
    snapshot = session.get(Snapshot, snapshot_id)
    if snapshot is None:
        raise NotFound(f"There is no snapshot {snapshot_id!r}.")
    return snapshot


# --- Writing ---------------------------------------------------------------------------------


def run_snapshot(db: Database, settings: Settings, snapshot_id: str) -> Snapshot:
    """Write a queued snapshot's directory; its row records progress, then "done" or "failed"
    with the reason. Never raises for a failed export: the row says what went wrong."""
    with db.session() as session:
        snapshot = get_snapshot(session, snapshot_id)
        started = session.execute(
            update(Snapshot)
            .where(Snapshot.id == snapshot_id, Snapshot.state == "queued")
            .values(state="running", heartbeat_at=utcnow())
        )
        if started.rowcount != 1:
            raise Conflict(f"The snapshot {snapshot_id!r} has been run already.")
        session.commit()
        request = ExportRequest.model_validate(snapshot.request)
        created_at = snapshot.created_at

    def progress(**values: Any) -> None:
        """Record progress (and a heartbeat); stop if the snapshot was failed as stuck."""
        with db.session() as session:
            updated = session.execute(
                update(Snapshot)
                .where(Snapshot.id == snapshot_id, Snapshot.state == "running")
                .values(heartbeat_at=utcnow(), **values)
            )
            session.commit()
        if updated.rowcount != 1:
            raise Conflict(f"The snapshot {snapshot_id!r} was failed while it ran.")

    stop = threading.Event()
    heartbeat = threading.Thread(target=_beat, args=(progress, stop), daemon=True)
    heartbeat.start()
    try:
        counts = _write(db, settings, snapshot_id, request, created_at, progress)
    except Exception as exc:
        if not isinstance(exc, ServiceError):
            log.exception("export %s failed", snapshot_id)
        message = exc.message if isinstance(exc, ServiceError) else f"{type(exc).__name__}: {exc}"
        _finish(progress, state="failed", error=message)
    else:
        _finish(progress, state="done", counts=counts)
    finally:
        stop.set()
        heartbeat.join()
    with db.session(write=False) as session:
        return get_snapshot(session, snapshot_id)


def _beat(progress: Callable[..., None], stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_EVERY.total_seconds()):
        try:
            progress()
        except Exception:  # the export itself notices, at its next progress report
            log.warning("export heartbeat failed", exc_info=True)
            return


def _finish(progress: Callable[..., None], **values: Any) -> None:
    with contextlib.suppress(Conflict):  # failed as stuck meanwhile: that stays its state
        progress(finished_at=utcnow(), **values)


def _write(
    db: Database,
    settings: Settings,
    snapshot_id: str,
    request: ExportRequest,
    created_at: Any,
    progress: Callable[..., None],
) -> dict[str, int]:
    final = snapshot_dir(settings, snapshot_id)
    if final.exists():
        raise _exists(snapshot_id)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = _work_dir(settings, snapshot_id)
    work.mkdir(mode=0o700)
    try:
        with db.session(write=False) as session:
            if session.get_bind().dialect.name == "postgresql":
                _begin_postgres_export(session)
            selection = export_records.select_data(session, request, settings.secret_key)
            with _second_reader(db, session) as second, ThreadPoolExecutor(1) as beside:
                # On the second reader, while the first reads PPO and SFT records; SQLite has
                # one reader, so the count is done before the records are read.
                found = beside.submit(
                    _count_and_find_overlap, second or session, selection, progress
                )
                if second is None:
                    found.result()
                overlap = found.result
                files = _write_records(session, second, selection, overlap, work, progress)
            agreement = export_agreement.summary(overlap())
            projects = [session.get(Project, pid) for pid in selection.project_ids]
        counts = {file.path.name: file.count for file in files}
        policy = _split_policy([p for p in projects if p is not None])
        card = dataset_card.render(
            request, policy, counts, agreement, projects, selection.low_agreement_labelers
        )
        (work / "README.md").write_text(card, encoding="utf-8")
        manifest = Manifest(
            schema_version=SCHEMA_VERSION,
            created_at=created_at.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z"),
            filters=request.model_dump(mode="json"),
            split_policy=policy,
            counts=counts,
            agreement=agreement,
            sha256=_checksums(work, files),
        )
        text = json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True)
        (work / "manifest.json").write_text(text + "\n", encoding="utf-8")
        if final.exists():
            raise _exists(snapshot_id)
        work.chmod(0o755)
        os.rename(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return counts


# The export reads pages of a few thousand rows by primary key ranges. PostgreSQL's default
# cost model, made for disks that seek, would rather scan a whole table per page than look the
# page's rows up by index (which makes a whole export quadratic); compiling each page's query
# (JIT) or starting parallel workers for it costs more than the query itself.
POSTGRES_EXPORT_SETTINGS = {
    "random_page_cost": "1.1",
    "jit": "off",
    "max_parallel_workers_per_gather": "0",
}


def _begin_postgres_export(session: Session, snapshot: str | None = None) -> None:
    """One REPEATABLE READ transaction for the whole export (on the `snapshot` that another
    one exported, if given), planned for paging by index."""
    connection = session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    if snapshot is not None:
        connection.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
    for name, value in POSTGRES_EXPORT_SETTINGS.items():
        connection.exec_driver_sql(f"SET LOCAL {name} = {value}")


def _count_and_find_overlap(
    session: Session, selection: export_records.Selection, progress: Callable[..., None]
) -> export_agreement.OverlapRankings:
    """Report how many records to expect; the (empty) collector of the overlap rankings."""
    total, overlap_items = export_records.count_records_and_overlap_items(session, selection)
    progress(records_total=total)
    return export_agreement.OverlapRankings(overlap_items)


@contextlib.contextmanager
def _second_reader(db: Database, session: Session) -> Iterator[Session | None]:
    """PostgreSQL: a second session on the export's snapshot (pg_export_snapshot), for reading
    beside the first; None on SQLite, whose connections cannot share a snapshot."""
    if session.get_bind().dialect.name != "postgresql":
        yield None
        return
    snapshot = session.connection().exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
    with db.session(write=False) as second:
        _begin_postgres_export(second, snapshot)
        yield second


def _write_records(
    session: Session,
    second: Session | None,
    selection: export_records.Selection,
    overlap: Callable[[], export_agreement.OverlapRankings],
    directory: Path,
    progress: Callable[..., None],
) -> list[Writer]:
    """Write every record file; its writers, closed, in file order. `overlap` gives the
    collector of overlap rankings once the RM records start; `second`, if any, reads beside
    `session` on the same snapshot."""
    request = selection.request
    suffixes = {"jsonl": ["jsonl"], "parquet": ["parquet"], "both": ["jsonl", "parquet"]}
    kinds = [*KIND_ORDER, *(["pairs"] if request.pairs != "none" else [])]
    with FileThread() as file_thread:
        writers: dict[tuple[str, str], list[Writer]] = {
            (kind, split): [
                _writer(directory, kind, split, s, file_thread) for s in suffixes[request.format]
            ]
            for kind in kinds
            for split in SPLITS
        }
        try:
            done = _write_lines(session, second, selection, overlap, writers, progress)
        finally:
            for group in writers.values():
                for writer in group:
                    writer.close()
    progress(records_done=done)
    return [writer for group in writers.values() for writer in group]


def _write_lines(
    session: Session,
    second: Session | None,
    selection: export_records.Selection,
    overlap: Callable[[], export_agreement.OverlapRankings],
    writers: dict[tuple[str, str], list[Writer]],
    progress: Callable[..., None],
) -> int:
    """Serialize every record once and hand its line to the writers of its file; how many."""
    pairs = selection.request.pairs
    sources = {
        "ppo": lambda: export_records.ppo_records(session, selection),
        "sft": lambda: export_records.sft_records(session, selection),
        "rm": lambda: export_records.rm_records(session, selection, overlap(), second),
    }
    done = 0
    next_progress = time.monotonic() + PROGRESS_INTERVAL
    for kind in KIND_ORDER:
        # Closed on the way out, error or not: their reading threads end before the sessions.
        with contextlib.closing(sources[kind]()) as records:
            for record in records:
                line = serialize(record)
                for writer in writers[kind, record["split"]]:
                    writer.write(line)
                if kind == "rm" and pairs != "none":
                    for pair in export_records.pairs(record, pairs):
                        line = serialize(pair)
                        for writer in writers["pairs", record["split"]]:
                            writer.write(line)
                done += 1
                if done % PROGRESS_CHECK_EVERY == 0 and time.monotonic() >= next_progress:
                    progress(records_done=done)
                    next_progress = time.monotonic() + PROGRESS_INTERVAL
    return done


def _writer(directory: Path, kind: str, split: str, suffix: str, file_thread: FileThread) -> Writer:
    path = directory / file_name(kind, split, suffix)
    if suffix == "jsonl":
        return JsonlWriter(path, file_thread)
    return ParquetWriter(path, kind, file_thread)


def _checksums(directory: Path, files: list[Writer]) -> dict[str, str]:
    """The sha256 of every file in the directory (the record files' from their writers)."""
    known = {file.path.name: file.sha256() for file in files}
    return {p.name: known.get(p.name) or sha256(p) for p in sorted(directory.iterdir())}


def _split_policy(projects: list[Project]) -> dict[str, object]:
    return {
        "unit": "prompt author: the labeler who wrote it, or the original user of an imported "
        "prompt (an imported prompt without one counts as its own author; an OASST tree "
        "without user ids counts as one author)",
        "assignment": "fixed the first time a project sees the author, to the split furthest "
        "below its ratio; never changes, so no author is in two splits",
        "ratios": {p.name: ratios(p) for p in projects},
    }


# --- Downloading -------------------------------------------------------------------------------


def archive(settings: Settings, snapshot: Snapshot) -> Path:
    """The snapshot as one .tar.gz (made on first request, then kept)."""
    if snapshot.state != "done":
        raise Conflict(f"The snapshot {snapshot.id!r} is not finished (it is {snapshot.state}).")
    directory = snapshot_dir(settings, snapshot.id)
    target = directory.with_name(f"{snapshot.id}.tar.gz")
    if not target.exists():
        handle, temporary = tempfile.mkstemp(prefix=f".{snapshot.id}.", dir=directory.parent)
        os.close(handle)
        try:
            with tarfile.open(temporary, "w:gz") as tar:
                for path in sorted(directory.iterdir()):
                    tar.add(path, arcname=f"{snapshot.id}/{path.name}")
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return target


def read_text(settings: Settings, snapshot: Snapshot, name: str) -> str | None:
    """A text file of a finished snapshot (manifest.json, README.md), if it is there."""
    path = snapshot_dir(settings, snapshot.id) / name
    return path.read_text(encoding="utf-8") if snapshot.state == "done" and path.exists() else None
