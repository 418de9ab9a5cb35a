"""Writing records to snapshot files: JSON lines always byte-stable, Parquet on request.

Each record is serialized once, to its JSON line (orjson: keys in the order the records are
built, no spaces, UTF-8 rather than \\u escapes, "\\n" after every record, like
json.dumps(record, ensure_ascii=False, separators=(",", ":")) several times faster), and every
writer of its file takes that line. Parquet (needs the `parquet` extra, pyarrow) is made from
the same lines: pyarrow's JSON reader turns ROW_GROUP of them at a time into columns with an
explicit schema per file kind (so empty files have columns too), one row group each. Both
writers hold at most one buffer of lines, whatever the size of the export.
"""

import hashlib
import io
from pathlib import Path
from typing import Any, Protocol

import orjson

from app.errors import InvalidInput

ROW_GROUP = 5_000
JSONL_BUFFER = 1 << 20


def serialize(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


class Writer(Protocol):
    path: Path
    count: int

    def write(self, line: bytes) -> None:
        """One record, as `serialize` made it."""

    def close(self) -> None: ...


class JsonlWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file = path.open("wb", buffering=JSONL_BUFFER)

    def write(self, line: bytes) -> None:
        self._file.write(line)
        self.count += 1

    def close(self) -> None:
        self._file.close()


class ParquetWriter:
    def __init__(self, path: Path, kind: str) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.count = 0
        self._schema = parquet_schema(kind)
        self._lines: list[bytes] = []
        self._writer = pq.ParquetWriter(path, self._schema, compression="zstd")

    def write(self, line: bytes) -> None:
        self._lines.append(line)
        self.count += 1
        if len(self._lines) >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        from pyarrow import json

        if not self._lines:
            return
        data = b"".join(self._lines)
        self._lines = []
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
        self._flush()
        self._writer.close()


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
