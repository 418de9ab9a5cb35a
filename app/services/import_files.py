"""Importing one uploaded file of a given kind (web form and JSON API; the CLI reads files the
same way): the bytes are decoded (UTF-8, else refused with the line of the first bad byte),
parsed by the kind's reader, and imported all or nothing per file and idempotently, exactly as
`rankery import <kind>` does. Bad lines are reported by number and nothing is imported."""

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import Project
from app.services import import_oasst, import_pairs, imports

KINDS = {
    "completions": "Completions to rank (JSONL, one ranking item a line)",
    "oasst": "OpenAssistant conversation trees (JSONL, one tree a line)",
    "pairs": "Chosen/rejected pairs (JSONL, HH-RLHF style)",
}
MAX_BYTES = 64 * 1024 * 1024


@dataclass
class FileImport:
    kind: str
    message: str  # what was imported, in a sentence
    counts: dict[str, int]
    dropped: list[str] = field(default_factory=list)  # new prompts left out as duplicates


def import_file(
    session: Session,
    project: Project,
    kind: str,
    data: bytes,
    max_bytes: int | None = MAX_BYTES,
) -> FileImport:
    """Import one file of `kind` into the project, in one commit (or nothing, on bad input).
    Uploads are limited to `max_bytes`; the CLI reads files of any size."""
    if kind not in KINDS:
        raise InvalidInput(f"Choose what the file holds: {', '.join(KINDS)} (not {kind!r}).")
    if not data.strip():
        raise InvalidInput("The file is empty. Nothing was imported.")
    if max_bytes is not None and len(data) > max_bytes:
        raise InvalidInput(
            f"The file is larger than {max_bytes // 2**20} MiB. Nothing was imported; "
            f"split it, or use `rankery import {kind}` on the server."
        )
    text = imports.decode(data)
    if kind == "oasst":
        trees = import_oasst.import_trees(session, project, import_oasst.parse(text))
        return FileImport(
            kind,
            f"Imported {trees.prompts} prompts, {trees.rankings} rankings and "
            f"{trees.demonstrations} demonstrations ({trees.skipped} prompter turns were there "
            "already).",
            {
                "prompts": trees.prompts,
                "rankings": trees.rankings,
                "demonstrations": trees.demonstrations,
                "skipped": trees.skipped,
            },
        )
    if kind == "pairs":
        pairs = import_pairs.import_pairs(session, project, import_pairs.parse(text))
        return FileImport(
            kind,
            f"Imported {pairs.rankings} pairs as K = 2 rankings ({pairs.prompts} new prompts; "
            f"{pairs.skipped} pairs were there already).",
            {"rankings": pairs.rankings, "prompts": pairs.prompts, "skipped": pairs.skipped},
        )
    items = imports.import_ranking_items(session, project, imports.parse_jsonl(text), "line")
    held = f"; {items.held} prompts with personal data wait for review" if items.held else ""
    return FileImport(
        kind,
        f"Imported {len(items.items)} ranking items ({items.skipped} were there already; "
        f"{len(items.dropped)} duplicate prompts dropped{held}).",
        {
            "items": len(items.items),
            "skipped": items.skipped,
            "dropped": len(items.dropped),
            "held_for_review": items.held,
        },
        items.dropped,
    )
