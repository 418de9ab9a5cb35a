"""How an export reads and writes: pages read ahead by a thread (SQLite's as one JSON text),
a second PostgreSQL reader on the export's snapshot, and the file thread's errors."""

import itertools
import json
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import DataError

from app.models import Prompt, Ranking
from app.schemas.snapshot import ExportRequest
from app.services import export_files, export_records, exports, import_oasst
from tests.factories import make_project, make_prompt, make_ranking, make_ranking_item, make_user

OASST = Path(__file__).parents[1] / "data" / "oasst_3_trees.jsonl"


def test_pages_read_ahead_come_in_order() -> None:
    assert list(export_records.read_ahead(iter(range(20)))) == list(range(20))


def test_an_error_while_reading_ahead_reaches_the_reader_of_the_pages() -> None:
    def pages():
        yield 1
        raise OSError("connection lost")

    pages_read = export_records.read_ahead(pages())
    assert next(pages_read) == 1
    with pytest.raises(OSError, match="connection lost"):
        next(pages_read)


def test_a_reader_that_stops_early_ends_the_reading_thread() -> None:
    pages_read = export_records.read_ahead(itertools.count())
    assert next(pages_read) == 0
    pages_read.close()
    assert not [t for t in threading.enumerate() if t.name == "export-read-ahead"]


def test_an_export_that_fails_midway_leaves_no_reading_thread(
    session, db, settings, monkeypatch
) -> None:
    project = make_project(session)
    for _ in range(3):
        make_ranking_item(session, project, k=4)
        make_ranking(session, project, make_user(session))
    serialized = []

    def serialize_twice(record):
        if len(serialized) == 2:
            raise OSError("disk full")
        serialized.append(record)
        return export_files.serialize(record)

    monkeypatch.setattr(exports, "serialize", serialize_twice)
    snapshot = exports.request_snapshot(session, settings, ExportRequest(), snapshot_id="half")
    snapshot = exports.run_snapshot(db, settings, snapshot.id)

    assert snapshot.state == "failed" and "disk full" in snapshot.error
    assert not [t for t in threading.enumerate() if t.name.startswith("export-")]


def test_a_page_holds_the_rows_of_its_query_in_order(session, settings) -> None:
    """On SQLite the database sends a page as one JSON text: the same values as plain rows,
    JSON columns (few-shot pairs, dialogue contexts) included."""
    project = make_project(session)
    import_oasst.import_trees(session, project, import_oasst.parse(OASST.read_text()))
    pairs = [{"query": "2 + 2?", "response": "4 ✓"}]
    make_prompt(session, project, make_user(session), kind="few_shot", few_shot_pairs=pairs)
    selection = export_records.select_data(session, ExportRequest(), settings.secret_key)
    query = export_records._ppo_query(selection)
    connection = session.connection()
    read_page = export_records.page_reader(connection, query, Prompt.id)

    rows = read_page(session.scalar(select(func.min(Prompt.id))))

    expected = connection.execute(query.order_by(Prompt.id)).all()
    assert len(expected) > 3
    assert [list(row) for row in rows] == [list(row) for row in expected]


def test_pages_longer_than_sqlites_longest_text_are_read_row_by_row(session, db, settings) -> None:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("a limit of SQLite's")
    project = make_project(session, annotations_per_item=2)
    for _ in range(30):
        make_ranking_item(session, project, k=4)
        make_ranking(session, project, make_user(session))
    make_ranking(session, project, make_user(session))  # a second ranking of an item
    request = {"format": "both", "pairs": "all"}
    whole_pages = _exported_files(session, db, settings, "whole-pages", request)

    db.engine.dispose()  # new connections, each limited to texts of 3,000 bytes
    event.listen(db.engine, "connect", _limit_texts_to_3000_bytes)
    selection = export_records.select_data(session, ExportRequest(), settings.secret_key)
    query = export_records.rm_query(selection)
    with db.session(write=False) as reading:
        connection = reading.connection()
        page = func.json_group_array(func.json_array(*query.subquery().columns))
        with pytest.raises(DataError):  # the page as one JSON text
            connection.execute(select(page))
        rows = connection.execute(query.order_by(query.selected_columns[0])).all()
        read_page = export_records.page_reader(connection, query, Ranking.id)
        assert read_page(reading.scalar(select(func.min(Ranking.id)))) == rows
    row_by_row = _exported_files(session, db, settings, "row-by-row", request)

    assert row_by_row == whole_pages


def _limit_texts_to_3000_bytes(connection: sqlite3.Connection, _record: object) -> None:
    connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 3_000)


def _exported_files(session, db, settings, snapshot_id: str, request: dict) -> dict[str, bytes]:
    snapshot = exports.request_snapshot(
        session, settings, ExportRequest(**request), snapshot_id=snapshot_id
    )
    snapshot = exports.run_snapshot(db, settings, snapshot.id)
    assert snapshot.state == "done", snapshot.error
    directory = exports.snapshot_dir(settings, snapshot_id)
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.name != "manifest.json"}


def test_a_second_reader_reads_the_snapshot_of_the_export(session, db) -> None:
    project = make_project(session)
    author = make_user(session)
    make_prompt(session, project, author)
    count = select(func.count()).select_from(Prompt)
    with db.session(write=False) as reading:
        if db.engine.dialect.name != "postgresql":
            with exports._second_reader(db, reading) as second:
                assert second is None  # SQLite's connections cannot share a snapshot
            return
        exports._begin_postgres_export(reading)
        before = reading.scalar(count)
        make_prompt(session, project, author, instruction="Written after the export began.")
        with exports._second_reader(db, reading) as second:
            assert second is not None
            assert second.scalar(count) == before == 1


@pytest.mark.parametrize(
    ("writer", "work"),
    [
        (export_files.JsonlWriter, "_write_lines"),
        (export_files.ParquetWriter, "_write_row_group"),
    ],
)
def test_a_file_that_cannot_be_written_fails_the_export_and_leaves_nothing(
    session, db, settings, monkeypatch, writer, work
) -> None:
    project = make_project(session)
    make_ranking_item(session, project, k=4)
    make_ranking(session, project, make_user(session))

    def disk_full(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(writer, work, disk_full)
    request = ExportRequest(format="both")
    snapshot = exports.request_snapshot(session, settings, request, snapshot_id="full")
    snapshot = exports.run_snapshot(db, settings, snapshot.id)

    assert snapshot.state == "failed" and "disk full" in snapshot.error
    assert list(exports.exports_dir(settings).iterdir()) == []


def test_after_an_error_the_file_thread_only_closes_files() -> None:
    done = []

    def fail():
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), export_files.FileThread() as file_thread:
        file_thread.submit(fail)
        file_thread.submit(lambda: done.append("closed"), always=True)
        file_thread.submit(lambda: done.append("written"))  # may raise: the error came first
    assert done == ["closed"]


def test_the_json_lines_writer_hashes_what_it_writes(tmp_path) -> None:
    path = tmp_path / "rm.train.jsonl"
    lines = [json.dumps({"n": n}).encode() + b"\n" for n in range(70_000)]
    with export_files.FileThread() as file_thread:
        writer = export_files.JsonlWriter(path, file_thread)
        for line in lines:
            writer.write(line)
        writer.close()
    assert path.read_bytes() == b"".join(lines)
    assert writer.sha256() == export_files.sha256(path)
