"""Backups: `backup` copies the database and DATA_DIR with a manifest; `restore` puts them into
an empty instance, checking the backup's integrity first and the row counts after."""

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.db import Database
from app.errors import Conflict, InvalidInput
from app.models import User
from app.schemas.snapshot import ExportRequest
from app.services import backup, exports
from tests.conftest import TEST_SECRET
from tests.factories import (
    make_base_version,
    make_demonstration,
    make_job,
    make_model_dir,
    make_project,
    make_prompt,
    make_ranking,
    make_ranking_item,
    make_user,
    make_worker,
)


@pytest.fixture
def filled(db: Database, session, settings: Settings) -> Settings:
    """An instance with people, rankings, a demonstration, a job, a worker, an export snapshot
    and a model directory under DATA_DIR."""
    make_user(session, "admin")
    author, first, second = make_user(session), make_user(session), make_user(session)
    project = make_project(session, annotations_per_item=2)
    prompt = make_prompt(session, project, author)
    make_ranking_item(session, project, k=4, prompt=prompt)
    make_ranking(session, project, first)
    make_ranking(session, project, second)
    make_demonstration(session, project, first, "A demonstration.")
    make_worker(session)
    base = make_base_version(session, settings.data_dir.parent / "base")
    params = {"project_id": project.id, "model_version_ids": [base.id], "prompt_ids": [prompt.id]}
    make_job(session, "sample", params)
    snapshot = exports.request_snapshot(session, settings, ExportRequest())
    assert exports.run_snapshot(db, settings, snapshot.id).state == "done"
    make_model_dir(settings.data_dir / "jobs" / "1" / "model")
    (settings.data_dir / "jobs" / "1" / "model" / "weights.bin").write_bytes(bytes(range(256)))
    session.commit()
    return settings


def elsewhere(url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=url, secret_key=TEST_SECRET, data_dir=tmp_path / "restored")


def file_digests(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): backup.sha256(p)
        for p in directory.rglob("*")
        if p.is_file() and not p.name.startswith("rankery.db")
    }


def test_a_backup_restored_into_an_empty_instance_has_the_same_rows_and_files(
    filled: Settings, empty_database, tmp_path: Path
) -> None:
    manifest = backup.backup(filled, tmp_path / "backup")
    target = elsewhere(empty_database(), tmp_path)

    report = backup.restore(target, tmp_path / "backup")

    source_counts = backup.database_counts(filled.database_url)
    assert backup.database_counts(target.database_url) == source_counts == manifest.tables
    assert source_counts["rankings"] == 2 and source_counts["snapshots"] == 1
    assert file_digests(target.data_dir) == file_digests(filled.data_dir)
    assert report.files_restored == len(file_digests(filled.data_dir)) > 0


def test_the_restored_database_is_usable(filled: Settings, empty_database, tmp_path) -> None:
    backup.backup(filled, tmp_path / "backup")
    target = elsewhere(empty_database(), tmp_path)
    backup.restore(target, tmp_path / "backup")
    database = Database(target.database_url)
    with database.session() as session:
        make_user(session, username="after-restore")
        assert session.scalar(select(func.count()).select_from(User)) == 5
    database.dispose()


def test_the_manifest_names_the_schema_revision_and_every_file(filled, tmp_path) -> None:
    manifest = backup.backup(filled, tmp_path / "backup")
    written = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert written["schema_revision"] == manifest.schema_revision is not None
    on_disk = {
        p.relative_to(tmp_path / "backup").as_posix()
        for p in (tmp_path / "backup").rglob("*")
        if p.is_file()
    }
    assert set(written["files"]) == on_disk - {"manifest.json"}
    assert manifest.database_file in written["files"]


def test_the_database_file_of_sqlite_is_left_out_of_the_artifacts(filled, tmp_path) -> None:
    manifest = backup.backup(filled, tmp_path / "backup")
    assert not [name for name in manifest.files if name.startswith("data/rankery.db")]


def test_a_backup_sees_committed_work_only_and_does_not_wait_for_writers(
    filled: Settings, db: Database, tmp_path: Path
) -> None:
    with db.session() as writer:
        make_user(writer, username="committed")
        writer.add(User(username="uncommitted", password_hash="x", role="labeler"))
        writer.flush()  # holds the write lock (SQLite) and row locks (PostgreSQL)

        manifest = backup.backup(filled, tmp_path / "backup")

        writer.rollback()
    assert manifest.tables["users"] == 5


def test_a_backup_never_replaces_an_existing_directory(filled, tmp_path) -> None:
    (tmp_path / "backup").mkdir()
    with pytest.raises(Conflict):
        backup.backup(filled, tmp_path / "backup")


def test_restore_refuses_a_database_that_holds_rows(filled, tmp_path) -> None:
    backup.backup(filled, tmp_path / "backup")
    before = backup.database_counts(filled.database_url)
    with pytest.raises(Conflict, match="not empty"):
        backup.restore(filled, tmp_path / "backup")
    assert backup.database_counts(filled.database_url) == before


def test_restore_with_force_replaces_what_the_database_holds(
    filled: Settings, session, tmp_path
) -> None:
    backup.backup(filled, tmp_path / "backup")
    make_user(session, username="made-after-the-backup")

    backup.restore(filled, tmp_path / "backup", force=True)

    session.commit()
    assert session.scalar(select(User).where(User.username == "made-after-the-backup")) is None


def test_restore_refuses_to_overwrite_other_files(filled, empty_database, tmp_path) -> None:
    backup.backup(filled, tmp_path / "backup")
    target = elsewhere(empty_database(), tmp_path)
    clash = target.data_dir / "jobs" / "1" / "model" / "weights.bin"
    clash.parent.mkdir(parents=True)
    clash.write_bytes(b"other weights")
    with pytest.raises(Conflict, match="overwritten"):
        backup.restore(target, tmp_path / "backup")
    assert clash.read_bytes() == b"other weights"


@pytest.mark.parametrize("damage", ["changed", "missing", "added"])
def test_a_damaged_backup_is_refused_before_anything_changes(
    filled, empty_database, tmp_path, damage
) -> None:
    backup.backup(filled, tmp_path / "backup")
    weights = tmp_path / "backup" / "data" / "jobs" / "1" / "model" / "weights.bin"
    if damage == "changed":
        weights.write_bytes(b"bit rot")
    elif damage == "missing":
        weights.unlink()
    else:
        (weights.parent / "stray.bin").write_bytes(b"?")
    target = elsewhere(empty_database(), tmp_path)

    with pytest.raises(InvalidInput, match="damaged"):
        backup.restore(target, tmp_path / "backup")

    assert not target.data_dir.exists()
    assert not any(backup.database_counts(target.database_url).values())


def test_a_backup_restores_only_into_the_same_kind_of_database(filled, tmp_path) -> None:
    manifest = backup.backup(filled, tmp_path / "backup")
    other = (
        "postgresql+psycopg://nobody@127.0.0.1:1/none"
        if manifest.dialect == "sqlite"
        else f"sqlite:///{tmp_path / 'other.db'}"
    )
    with pytest.raises(InvalidInput, match=f"backup of a {manifest.dialect} database"):
        backup.restore(elsewhere(other, tmp_path), tmp_path / "backup")


def test_a_backup_from_a_newer_schema_is_refused(filled, empty_database, tmp_path) -> None:
    backup.backup(filled, tmp_path / "backup")
    manifest_path = tmp_path / "backup" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["schema_revision"] = "9999"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(InvalidInput, match="unknown to this version"):
        backup.restore(elsewhere(empty_database(), tmp_path), tmp_path / "backup")


def test_the_postgresql_tools_match_the_server_version(database_url) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    database = Database(database_url)
    with database.engine.connect() as connection:
        server = backup._server_major(connection)
    database.dispose()
    assert backup._tool_major(backup.pg_tool("pg_dump", server)) >= server
    assert backup._tool_major(backup.pg_tool("pg_restore", server)) >= server
