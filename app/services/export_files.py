"""Writing records to snapshot files: JSON lines always byte-stable, Parquet on request.

Each record is serialized once, to its JSON line (orjson: keys in the order the records are
built, no spaces, UTF-8 rather than \\u escapes, "\\n" after every record, like
json.dumps(record, ensure_ascii=False, separators=(",", ":")) several times faster), and every
writer of its file takes that line. Parquet (needs the `parquet` extra, pyarrow) is made from
the same lines: pyarrow's JSON reader turns ROW_GROUP of them at a time into columns with an
explicit schema per file kind (so empty files have columns too), one row group each.

The writers collect lines; the file work (writing a megabyte of JSON lines at a time and
hashing them for the manifest, converting a row group to Parquet) runs in one `FileThread`
beside the export's thread, in the order it came: it spends its time in code that releases
the GIL (file writes, hashlib, pyarrow). Each writer holds at most one buffer of lines and
the thread at most QUEUED_JOBS of them, whatever the size of the export.
"""

import hashlib
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import orjson

from app.errors import InvalidInput

ROW_GROUP = 5_000
JSONL_BUFFER = 1 << 20
QUEUED_JOBS = 2
# The columns with few distinct values, the only ones worth a dictionary: for ids and texts,
# every value is new, and building the dictionary costs more time than it saves space.
FEW_VALUES = {
    "split", "prompt_kind", "category", "language", "author", "labeler", "labeler_group", "origin",
}  # fmt: skip


def serialize(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


class Writer(Protocol):
    path: Path
    count: int

    def write(self, line: bytes) -> None:
        """One record, as `serialize` made it."""

    def close(self) -> None:
        """Hand the rest to the file thread, which closes the file (never raises)."""

    def sha256(self) -> str | None:
        """The checksum of the complete file, if the writer computed it on the way."""


class FileThread:
    """Runs the writers' file work, in the order it came, in one background thread; a context
    manager that waits for the work to finish on leaving.

    `submit` waits while QUEUED_JOBS jobs are waiting (so memory stays bounded) and raises the
    first error of an earlier job, as does leaving the context. After an error the thread
    still takes every job (skipping all but the closing of files), so that nobody waits on it
    forever and every file gets closed."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], None], bool] | None] = queue.Queue(QUEUED_JOBS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="export-files", daemon=True)

    def __enter__(self) -> "FileThread":
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self._jobs.put(None)
        self._thread.join()
        if exc is None:
            self._raise_error()

    def submit(self, job: Callable[[], None], always: bool = False) -> None:
        """Queue `job`; `always`: run it even after an error (it closes a file)."""
        if not always:
            self._raise_error()
        self._jobs.put((job, always))

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, always = item
            if self._error is None or always:
                try:
                    job()
                except BaseException as exc:  # handed to the export's thread
                    self._error = self._error or exc

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error


class JsonlWriter:
    def __init__(self, path: Path, file_thread: FileThread) -> None:
        self.path = path
        self.count = 0
        self._file_thread = file_thread
        self._file = path.open("wb")
        self._digest = hashlib.sha256()
        self._lines = bytearray()

    def write(self, line: bytes) -> None:
        self._lines += line
        self.count += 1
        if len(self._lines) >= JSONL_BUFFER:
            lines, self._lines = self._lines, bytearray()
            self._file_thread.submit(lambda: self._write_lines(lines))

    def _write_lines(self, lines: bytearray) -> None:
        self._file.write(lines)
        self._digest.update(lines)

    def close(self) -> None:
        lines, self._lines = self._lines, bytearray()
        self._file_thread.submit(lambda: self._finish(lines), always=True)

    def _finish(self, lines: bytearray) -> None:
        try:
            self._write_lines(lines)
        finally:
            self._file.close()

    def sha256(self) -> str | None:
        return self._digest.hexdigest()


class ParquetWriter:
    def __init__(self, path: Path, kind: str, file_thread: FileThread) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.count = 0
        self._file_thread = file_thread
        self._schema = parquet_schema(kind)
        self._lines = bytearray()
        self._buffered = 0  # lines in self._lines
        self._writer = pq.ParquetWriter(
            path,
            self._schema,
            compression="zstd",
            use_dictionary=[name for name in self._schema.names if name in FEW_VALUES],
        )

    def write(self, line: bytes) -> None:
        self._lines += line
        self._buffered += 1
        self.count += 1
        if self._buffered == ROW_GROUP:
            lines, self._lines, self._buffered = self._lines, bytearray(), 0
            self._file_thread.submit(lambda: self._write_row_group(lines))

    def _write_row_group(self, lines: bytearray) -> None:
        import pyarrow as pa
        from pyarrow import json

        table = json.read_json(
            pa.BufferReader(pa.py_buffer(lines)),
            # One block: the reader splits its input at block boundaries.
            read_options=json.ReadOptions(use_threads=False, block_size=len(lines) + 1),
            parse_options=json.ParseOptions(
                explicit_schema=self._schema, unexpected_field_behavior="error"
            ),
        )
        self._writer.write_table(table, row_group_size=ROW_GROUP)

    def close(self) -> None:
        lines, self._lines = self._lines, bytearray()
        self._file_thread.submit(lambda: self._finish(lines), always=True)

    def _finish(self, lines: bytearray) -> None:
        try:
            if lines:
                self._write_row_group(lines)
        finally:
            self._writer.close()

    def sha256(self) -> str | None:
        return None


def check_parquet_available() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise InvalidInput(
            "Parquet needs pyarrow, which is not installed: pip install 'rankery[parquet]'."
        ) from None


def parquet_schema(kind: str) -> Any:
    import pyarrow as pa

    text = pa.string()
    messages = pa.list_(pa.struct([("role", text), ("content", text)]))
    prompt = [
        ("prompt_id", text),
        ("split", text),
        ("prompt_kind", text),
        ("category", text),
        ("language", text),
        ("author", text),
    ]
    completion = pa.struct(
        [
            ("id", text),
            ("text", text),
            ("rank", pa.int64()),
            ("quality", pa.int64()),
            ("flags", pa.list_(text)),
            ("model", text),
        ]
    )
    fields = {
        "ppo": [*prompt, ("context", messages)],
        "sft": [
            *prompt,
            ("id", text),
            ("messages", messages),
            ("labeler", text),
            ("origin", text),
            ("time_spent_ms", pa.int64()),
        ],
        "rm": [
            *prompt,
            ("id", text),
            ("context", messages),
            ("completions", pa.list_(completion)),
            ("labeler", text),
            ("labeler_group", text),
            ("all_bad", pa.bool_()),
            ("time_spent_ms", pa.int64()),
        ],
        "pairs": [("prompt", messages), ("chosen", messages), ("rejected", messages)],
    }[kind]
    return pa.schema(fields)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
