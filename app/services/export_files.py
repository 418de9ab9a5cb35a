"""Writing records to snapshot files: JSON lines always byte-stable, Parquet on request.

JSON lines: keys in the order the records are built, no spaces, UTF-8 (not \\u escapes), "\\n"
after every record. Parquet (needs the `parquet` extra, pyarrow) is written in row groups of
ROW_GROUP records with an explicit schema per file kind, so empty files have columns too.
"""

import hashlib
from pathlib import Path
from typing import Any, Protocol

import orjson

from app.errors import InvalidInput

ROW_GROUP = 5_000


class Writer(Protocol):
    count: int

    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonlWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file = path.open("wb")

    def write(self, record: dict[str, Any]) -> None:
        # orjson writes compact UTF-8 with keys in insertion order, like
        # json.dumps(record, ensure_ascii=False, separators=(",", ":")), several times faster.
        self._file.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        self.count += 1

    def close(self) -> None:
        self._file.close()


class ParquetWriter:
    def __init__(self, path: Path, kind: str) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.count = 0
        self._schema = parquet_schema(kind)
        self._rows: list[dict[str, Any]] = []
        self._writer = pq.ParquetWriter(path, self._schema, compression="zstd")

    def write(self, record: dict[str, Any]) -> None:
        self._rows.append(record)
        self.count += 1
        if len(self._rows) >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self._schema))
            self._rows = []

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
