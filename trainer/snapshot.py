"""Reads export snapshots: a directory with `manifest.json` and `{sft,rm,ppo}.<split>.jsonl`.

The format is defined by the app (`docs/export-format.schema.json`); this reader keeps only the
fields that training uses, in plain dataclasses, and refuses snapshots of a schema version it
does not know. It checks the sha256 the manifest records for every file it reads.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 1
SPLITS = ("train", "validation", "test")


class SnapshotError(ValueError):
    """The directory is not a snapshot this trainer can read; the message says why."""


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Demonstration:
    """A conversation ending with an assistant turn; SFT puts the loss on assistant turns."""

    id: str
    prompt_id: str
    messages: tuple[Message, ...]
    labeler: str


@dataclass(frozen=True)
class RankedCompletion:
    id: str
    text: str
    rank: int  # dense, 1 is best; equal ranks are ties


@dataclass(frozen=True)
class Ranking:
    """One labeler's ranking of the K completions of one prompt."""

    id: str
    prompt_id: str
    context: tuple[Message, ...]
    completions: tuple[RankedCompletion, ...]
    labeler: str
    labeler_group: str

    @property
    def k(self) -> int:
        return len(self.completions)

    def ordered_pairs(self) -> list[tuple[int, int]]:
        """(better, worse) completion indices for every pair with different ranks."""
        ranks = [c.rank for c in self.completions]
        return [(a, b) for a in range(len(ranks)) for b in range(len(ranks)) if ranks[a] < ranks[b]]


@dataclass(frozen=True)
class Prompt:
    """A prompt for reinforcement learning: `context` ends with a user turn."""

    prompt_id: str
    context: tuple[Message, ...]


@dataclass(frozen=True)
class Manifest:
    schema_version: int
    created_at: str
    counts: dict[str, int]
    sha256: dict[str, str]


def _messages(items: list[dict]) -> tuple[Message, ...]:
    return tuple(Message(role=m["role"], content=m["content"]) for m in items)


def _demonstration(r: dict) -> Demonstration:
    return Demonstration(
        id=r["id"],
        prompt_id=r["prompt_id"],
        messages=_messages(r["messages"]),
        labeler=r["labeler"],
    )


def _ranking(r: dict) -> Ranking:
    completions = tuple(
        RankedCompletion(id=c["id"], text=c["text"], rank=c["rank"]) for c in r["completions"]
    )
    return Ranking(
        id=r["id"],
        prompt_id=r["prompt_id"],
        context=_messages(r["context"]),
        completions=completions,
        labeler=r["labeler"],
        labeler_group=r["labeler_group"],
    )


def _prompt(r: dict) -> Prompt:
    return Prompt(prompt_id=r["prompt_id"], context=_messages(r["context"]))


_PARSERS = {"sft": _demonstration, "rm": _ranking, "ppo": _prompt}


class Snapshot:
    """An export snapshot directory, checked on opening."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)

    def demonstrations(self, split: str) -> list[Demonstration]:
        return self._read("sft", split)

    def rankings(self, split: str) -> list[Ranking]:
        return self._read("rm", split)

    def prompts(self, split: str) -> list[Prompt]:
        return self._read("ppo", split)

    def _read(self, kind: str, split: str) -> list:
        if split not in SPLITS:
            raise SnapshotError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        name = f"{kind}.{split}.jsonl"
        path = self.directory / name
        if not path.exists():
            if self.manifest.counts.get(name, 0):
                raise SnapshotError(f"{path} is listed in the manifest but missing")
            return []
        data = path.read_bytes()
        expected = self.manifest.sha256.get(name)
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise SnapshotError(f"{path} does not match the sha256 in the manifest")
        parse = _PARSERS[kind]
        records = []
        for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(parse(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise SnapshotError(f"{path}, line {number}: not a {kind} record ({exc})") from None
        return records


def read_manifest(directory: Path) -> Manifest:
    path = directory / "manifest.json"
    if not path.is_file():
        raise SnapshotError(f"{directory} is not an export snapshot: it has no manifest.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise SnapshotError(f"{path} has no schema_version: it was not written by a Rankery export")
    version = data["schema_version"]
    if version != SCHEMA_VERSION:
        raise SnapshotError(
            f"{path} has schema_version {version!r}, but this trainer reads schema version "
            f"{SCHEMA_VERSION} only: export the snapshot again, or use a trainer of the "
            "matching Rankery version"
        )
    return Manifest(
        schema_version=version,
        created_at=str(data.get("created_at", "")),
        counts=dict(data.get("counts") or {}),
        sha256=dict(data.get("sha256") or {}),
    )
