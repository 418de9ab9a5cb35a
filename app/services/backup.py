"""Backups: the database and the artifacts directory (DATA_DIR: exports, job runs, models) as
one directory with a manifest, and the restore of such a directory into an empty instance.

A backup directory holds

    manifest.json       format, dialect, schema revision, row counts per table, sha256 of files
    database.sqlite3    SQLite: a copy made with SQLite's online backup API
    database.pgdump     PostgreSQL: `pg_dump -Fc` (custom format, for `pg_restore`)
    data/...            the files under DATA_DIR, but not the SQLite database itself

Both are safe while the server runs. SQLite's backup API copies a consistent snapshot; on
PostgreSQL the row counts are read in a REPEATABLE READ transaction whose snapshot is exported
to pg_dump (`--snapshot`), so counts and dump describe the same moment. Files are hashed as they
are copied, so the manifest describes the copy even when a file changes meanwhile. The directory
is written beside its final name and renamed into place at the end: it is complete or absent.

Restore checks every checksum first, refuses a database that holds rows (or artifacts that would
be overwritten with other content) unless forced, restores the database in one transaction,
copies the files, and finally compares the restored row counts with the manifest.
"""

import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from app.config import Settings
from app.errors import Conflict, InvalidInput, ServiceError
from app.migrate import alembic_config
from app.models.base import utcnow

log = logging.getLogger(__name__)
FORMAT = 1
MANIFEST = "manifest.json"
DATA = "data"
DATABASE_FILES = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
CHUNK = 1 << 20


@dataclass(frozen=True)
class Manifest:
    dialect: str
    schema_revision: str | None
    created_at: str
    data_dir: str
    tables: dict[str, int]
    files: dict[str, str]  # path inside the backup -> sha256
    tools: dict[str, str] = field(default_factory=dict)
    format: int = FORMAT

    @property
    def database_file(self) -> str:
        return DATABASE_FILES[self.dialect]


@dataclass(frozen=True)
class RestoreReport:
    manifest: Manifest
    files_restored: int
    notes: list[str]


class BackupError(ServiceError):
    pass


# --- Backup -----------------------------------------------------------------------------------


def backup(settings: Settings, out: Path) -> Manifest:
    """Write a backup of the database and DATA_DIR to the new directory `out`."""
    out = out.resolve()
    if out.exists():
        raise Conflict(f"{out} exists already; a backup goes to a new directory.")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        url = sa.make_url(settings.database_url)
        dialect = url.get_backend_name()
        if dialect == "sqlite":
            tables, revision, tools = _backup_sqlite(url, work / DATABASE_FILES["sqlite"])
        elif dialect == "postgresql":
            tables, revision, tools = _backup_postgres(url, work / DATABASE_FILES["postgresql"])
        else:
            raise InvalidInput(f"Backups support SQLite and PostgreSQL, not {dialect}.")
        files = {DATABASE_FILES[dialect]: sha256(work / DATABASE_FILES[dialect])}
        skip = {out, work, *_sqlite_files(url)}
        for path in _artifact_files(settings.data_dir, skip):
            name = f"{DATA}/{path.relative_to(settings.data_dir.resolve()).as_posix()}"
            files[name] = _copy_hashed(path, work / name)
        manifest = Manifest(
            dialect=dialect,
            schema_revision=revision,
            created_at=utcnow().isoformat(timespec="seconds") + "Z",
            data_dir=str(settings.data_dir.resolve()),
            tables=tables,
            files=files,
            tools=tools,
        )
        text = json.dumps(vars(manifest), indent=2, sort_keys=True)
        (work / MANIFEST).write_text(text + "\n", encoding="utf-8")
        work.chmod(0o700)  # the backup holds password hashes and everyone's work
        os.rename(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def _backup_sqlite(url: sa.URL, target: Path) -> tuple[dict[str, int], str | None, dict[str, str]]:
    source_path = _sqlite_path(url)
    if not source_path.is_file():
        raise InvalidInput(f"There is no SQLite database at {source_path}.")
    source = sqlite3.connect(source_path)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)  # one step: a consistent snapshot, while others keep writing
    finally:
        source.close()
    try:
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        tables, revision = _sqlite_contents(copy)
    finally:
        copy.close()
    return tables, revision, {"sqlite": sqlite3.sqlite_version}


def _sqlite_contents(connection: sqlite3.Connection) -> tuple[dict[str, int], str | None]:
    names = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    tables = {n: connection.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    revision = None
    if "alembic_version" in tables:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else None
    return tables, revision


def _backup_postgres(
    url: sa.URL, target: Path
) -> tuple[dict[str, int], str | None, dict[str, str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                snapshot = connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar()
                server = _server_major(connection)
                tables, revision = _postgres_contents(connection)
                pg_dump = pg_tool("pg_dump", server)
                _run(
                    [
                        str(pg_dump),
                        "--format=custom",
                        f"--snapshot={snapshot}",
                        "--no-owner",
                        "--no-privileges",
                        f"--file={target}",
                    ],
                    url,
                )
    finally:
        engine.dispose()
    return tables, revision, {"pg_dump": _tool_version(pg_dump), "server": str(server)}


def _postgres_contents(connection: sa.Connection) -> tuple[dict[str, int], str | None]:
    names = sa.inspect(connection).get_table_names()
    tables = {
        n: connection.execute(sa.text(f'SELECT count(*) FROM "{n}"')).scalar_one()
        for n in sorted(names)
    }
    revision = None
    if "alembic_version" in tables:
        revision = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    return tables, revision


def _artifact_files(data_dir: Path, skip: set[Path]) -> Iterator[Path]:
    root = data_dir.resolve()
    if not root.is_dir():
        return
    for directory, subdirectories, names in os.walk(root):
        here = Path(directory)
        subdirectories[:] = sorted(d for d in subdirectories if here / d not in skip)
        for name in sorted(names):
            path = here / name
            if path in skip or path.is_symlink():
                continue
            yield path


def _copy_hashed(source: Path, target: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
            writer.write(chunk)
    shutil.copystat(source, target)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- Restore ----------------------------------------------------------------------------------


def read_manifest(source: Path) -> Manifest:
    path = source / MANIFEST
    if not path.is_file():
        raise InvalidInput(f"{source} is not a Rankery backup (it has no {MANIFEST}).")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        manifest = Manifest(**raw)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{path} is damaged: {exc}") from None
    if manifest.format != FORMAT or manifest.dialect not in DATABASE_FILES:
        raise InvalidInput(f"{path}: unknown backup format {manifest.format} ({manifest.dialect}).")
    return manifest


def verify(source: Path) -> Manifest:
    """The backup's manifest, once every file it lists is there with its checksum, and no
    other file is (a backup is changed by nobody)."""
    source = source.resolve()
    manifest = read_manifest(source)
    if manifest.database_file not in manifest.files:
        raise InvalidInput(f"The backup's manifest lists no {manifest.database_file}.")
    problems = []
    for name, expected in sorted(manifest.files.items()):
        path = (source / name).resolve()
        if not path.is_relative_to(source):
            problems.append(f"{name}: outside the backup")
        elif not path.is_file():
            problems.append(f"{name}: missing")
        elif sha256(path) != expected:
            problems.append(f"{name}: checksum differs")
    present = {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()} - {
        MANIFEST
    }
    problems += [f"{name}: not in the manifest" for name in sorted(present - set(manifest.files))]
    if problems:
        shown = "; ".join(problems[:10]) + ("; ..." if len(problems) > 10 else "")
        raise InvalidInput(f"The backup at {source} is damaged, nothing was restored: {shown}.")
    return manifest


def restore(settings: Settings, source: Path, force: bool = False) -> RestoreReport:
    """Restore a backup into this instance's database and DATA_DIR (which must be empty, or
    `force`); the backup's integrity is checked before anything changes."""
    source = source.resolve()
    manifest = verify(source)
    url = sa.make_url(settings.database_url)
    if url.get_backend_name() != manifest.dialect:
        raise InvalidInput(
            f"This is a backup of a {manifest.dialect} database; RANKERY_DATABASE_URL names a "
            f"{url.get_backend_name()} one. Nothing was restored."
        )
    notes = _check_revision(settings, manifest.schema_revision)
    if not force:
        _check_empty_database(url)
        _check_no_overwrites(settings.data_dir, source, manifest)
    if manifest.dialect == "sqlite":
        _restore_sqlite(url, source / manifest.database_file)
    else:
        _restore_postgres(url, source / manifest.database_file)
    restored = 0
    for name in sorted(manifest.files):
        if name.startswith(f"{DATA}/"):
            target = settings.data_dir / name.removeprefix(f"{DATA}/")
            _copy_hashed(source / name, target.with_name(f".{target.name}.restoring"))
            os.replace(target.with_name(f".{target.name}.restoring"), target)
            restored += 1
    counts = database_counts(settings.database_url)
    if counts != manifest.tables:
        differ = sorted(set(counts.items()) ^ set(manifest.tables.items()))
        raise BackupError(f"The restored row counts differ from the backup's: {differ[:10]}.")
    if manifest.data_dir != str(settings.data_dir.resolve()):
        notes.append(
            f"The backup was made with DATA_DIR {manifest.data_dir}; its files now lie under "
            f"{settings.data_dir.resolve()}. Model versions registered by path still name the "
            "old location."
        )
    return RestoreReport(manifest, restored, notes)


def database_counts(database_url: str) -> dict[str, int]:
    """Rows per table (alembic_version included), as a manifest records them."""
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(_sqlite_path(url))
        try:
            return _sqlite_contents(connection)[0]
        finally:
            connection.close()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return _postgres_contents(connection)[0]
    finally:
        engine.dispose()


def _check_revision(settings: Settings, revision: str | None) -> list[str]:
    script = ScriptDirectory.from_config(alembic_config(settings.database_url))
    if revision is None:
        return ["The backup's database had no schema revision; run `rankery migrate`."]
    try:
        script.get_revision(revision)
    except CommandError:
        raise InvalidInput(
            f"The backup's schema revision {revision} is unknown to this version of Rankery "
            "(it was made by a newer one); nothing was restored."
        ) from None
    if revision != script.get_current_head():
        return [f"The backup is at schema revision {revision}: run `rankery migrate` next."]
    return []


def _check_empty_database(url: sa.URL) -> None:
    if url.get_backend_name() == "sqlite" and not _sqlite_path(url).exists():
        return
    counts = database_counts(url.render_as_string(hide_password=False))
    full = sorted(name for name, n in counts.items() if n and name != "alembic_version")
    if full:
        raise Conflict(
            f"The database is not empty ({', '.join(full[:5])} hold rows); restore into an "
            "empty one, or pass --force to replace its contents. Nothing was restored."
        )


def _check_no_overwrites(data_dir: Path, source: Path, manifest: Manifest) -> None:
    clashes = []
    for name, digest in manifest.files.items():
        if name.startswith(f"{DATA}/"):
            target = data_dir / name.removeprefix(f"{DATA}/")
            if target.exists() and (not target.is_file() or sha256(target) != digest):
                clashes.append(str(target))
    if clashes:
        raise Conflict(
            f"{len(clashes)} file(s) in DATA_DIR would be overwritten with other content "
            f"({clashes[0]}, ...); pass --force to overwrite them. Nothing was restored."
        )


def _restore_sqlite(url: sa.URL, backup_file: Path) -> None:
    target = _sqlite_path(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(backup_file)
    destination = sqlite3.connect(target)
    try:
        source.backup(destination)  # replaces the whole database in one transaction
        destination.execute("PRAGMA journal_mode=WAL")
    finally:
        destination.close()
        source.close()


def _restore_postgres(url: sa.URL, backup_file: Path) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            server = _server_major(connection)
    finally:
        engine.dispose()
    pg_restore = pg_tool("pg_restore", server)
    # --clean --if-exists replaces what exists; one transaction: all or nothing.
    _run(
        [
            str(pg_restore),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={url.database}",
            str(backup_file),
        ],
        url,
    )


# --- PostgreSQL tools and SQLite paths ----------------------------------------------------------


def pg_tool(name: str, server_major: int) -> Path:
    """The PostgreSQL client `name` for a server of this major version: Debian's binaries of
    the same version (as scripts/postgres.sh finds them), else the newest that is at least as
    new, else the one on PATH when it is new enough."""
    candidates = [Path(f"/usr/lib/postgresql/{server_major}/bin/{name}")]
    newer = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
        reverse=True,
    )
    candidates += newer
    if on_path := shutil.which(name):
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and _tool_major(candidate) >= server_major:
            return candidate
    raise BackupError(
        f"No {name} for PostgreSQL {server_major} was found (looked in /usr/lib/postgresql/*/bin "
        f"and on PATH). Install the PostgreSQL {server_major} client tools."
    )


def _tool_version(tool: Path) -> str:
    result = subprocess.run([str(tool), "--version"], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def _tool_major(tool: Path) -> int:
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", _tool_version(tool))
    return int(match.group(1)) if match else 0


def _server_major(connection: sa.Connection) -> int:
    return int(connection.exec_driver_sql("SHOW server_version_num").scalar()) // 10000


def _run(command: list[str], url: sa.URL) -> None:
    """Run a PostgreSQL client with the connection in libpq's environment variables (so the
    password never appears in a process list)."""
    env = {**os.environ}
    for variable, value in (
        ("PGHOST", url.host),
        ("PGPORT", url.port),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
        ("PGDATABASE", url.database),
    ):
        if value is not None:
            env[variable] = str(value)
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        tool = Path(command[0]).name
        raise BackupError(f"{tool} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")


def _sqlite_path(url: sa.URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise InvalidInput("An in-memory SQLite database cannot be backed up or restored.")
    return Path(url.database).resolve()


def _sqlite_files(url: sa.URL) -> list[Path]:
    if url.get_backend_name() != "sqlite":
        return []
    path = _sqlite_path(url)
    return [path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))]


def manifest_summary(manifest: Manifest) -> dict[str, Any]:
    """What the CLI prints about a backup."""
    return {
        "dialect": manifest.dialect,
        "schema_revision": manifest.schema_revision,
        "rows": sum(n for t, n in manifest.tables.items() if t != "alembic_version"),
        "tables": len(manifest.tables),
        "files": sum(1 for name in manifest.files if name.startswith(f"{DATA}/")),
    }
