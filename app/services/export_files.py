"""Writing records to snapshot files: JSON lines always byte-stable, Parquet on request.

Each record is serialized once, to its JSON line (orjson: keys in the order the records are
built, no spaces, UTF-8 rather than \\u escapes, "\\n" after every record, like
json.dumps(record, ensure_ascii=False, separators=(",", ":")) several times faster), and every
writer of its file takes that line. A JSON lines writer writes (and hashes, for the manifest)
a megabyte of lines at a time. Parquet (needs the `parquet` extra, pyarrow) is made from the
same lines: pyarrow's JSON reader turns ROW_GROUP of them at a time into columns with an
explicit schema per file kind (so empty files have columns too), one row group each. That
work runs in a `ParquetConverter` thread beside the export (pyarrow releases the GIL), in the
order the row groups were made. The writers hold at most one buffer of lines each and the
converter at most QUEUED_ROW_GROUPS of them, whatever the size of the export.
"""

import hashlib
import io
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import orjson

from app.errors import InvalidInput

ROW_GROUP = 5_000
JSONL_BUFFER = 1 << 20
QUEUED_ROW_GROUPS = 2


def serialize(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


class Writer(Protocol):
    path: Path
    count: int

    def write(self, line: bytes) -> None:
        """One record, as `serialize` made it."""

    def close(self) -> None: ...

    def sha256(self) -> str | None:
        """The checksum of the file once closed, if the writer computed it on the way."""


class JsonlWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file = path.open("wb", buffering=0)
        self._digest = hashlib.sha256()
        self._lines: list[bytes] = []
        self._buffered = 0

    def write(self, line: bytes) -> None:
        self._lines.append(line)
        self._buffered += len(line)
        self.count += 1
        if self._buffered >= JSONL_BUFFER:
            self._flush()

    def _flush(self) -> None:
        data = b"".join(self._lines)
        self._lines = []
        self._buffered = 0
        self._file.write(data)
        self._digest.update(data)

    def close(self) -> None:
        try:
            self._flush()
        finally:
            self._file.close()

    def sha256(self) -> str | None:
        return self._digest.hexdigest()


class ParquetConverter:
    """Runs the Parquet writers' work, in the order it came, in one background thread.

    `submit` waits while QUEUED_ROW_GROUPS jobs are waiting (so memory stays bounded) and
    raises the first error of an earlier job; `close` waits for the rest and raises it too.
    After an error the thread still takes every job (skipping all but the writers' closes),
    so that nobody waits on it forever and every file gets closed."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], None], bool] | None] = queue.Queue(
            QUEUED_ROW_GROUPS
        )
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="parquet", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None], always: bool = False) -> None:
        """Queue `job`; `always`: run it even after an error (closing a file)."""
        if not always:
            self._raise_error()
        self._jobs.put((job, always))

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()
        self._raise_error()

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


class ParquetWriter:
    def __init__(self, path: Path, kind: str, converter: ParquetConverter) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.count = 0
        self._schema = parquet_schema(kind)
        self._lines: list[bytes] = []
        self._converter = converter
        self._writer = pq.ParquetWriter(path, self._schema, compression="zstd")

    def write(self, line: bytes) -> None:
        self._lines.append(line)
        self.count += 1
        if len(self._lines) >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self._lines:
            data = b"".join(self._lines)
            self._lines = []
            self._converter.submit(lambda: self._write_row_group(data))

    def _write_row_group(self, data: bytes) -> None:
        from pyarrow import json

        table = json.read_json(
            io.BytesIO(data),
            # One block: the reader splits its input at block boundaries.
            read_options=json.ReadOptions(use_threads=False, block_size=len(data) + 1),
            parse_options=json.ParseOptions(
                explicit_schema=self._schema, unexpected_field_behavior="error"
            ),
        )
        self._writer.write_table(table, row_group_size=ROW_GROUP)

    def close(self) -> None:
        try:
            self._flush()
        finally:
            self._converter.submit(self._writer.close, always=True)

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
