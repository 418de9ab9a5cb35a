"""The export snapshot format: the one written definition of what the app writes and the
trainer reads (design section 3). `docs/export-format.schema.json` is generated from these
models (`python -m app.schemas.export > docs/export-format.schema.json`); a test keeps the two
equal, the exporter's tests validate what it writes against the models, and the trainer's
tests validate their fixtures against the JSON Schema file (the trainer never imports `app`).

One JSON object per line. Records hold no timestamps, so the same data and filters give
byte-identical files. Conversations are `[{role, content}]` lists; people are pseudonyms.
"""

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
SPLITS = ("train", "validation", "test")
FILE_KINDS = ("sft", "rm", "ppo")

Split = Literal["train", "validation", "test"]
Pseudonym = Annotated[str, Field(min_length=1, description="Stable pseudonym of a person.")]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(Record):
    role: Literal["system", "user", "assistant"]
    content: str


class PromptFields(Record):
    """What every record says about its prompt."""

    prompt_id: str = Field(description="Stable id of the prompt (e.g. 'p123', 'oasst:<uuid>').")
    split: Split
    prompt_kind: Literal["plain", "few_shot", "user_based", "dialogue", "imported"]
    category: str
    language: str
    author: Pseudonym


class SftRecord(PromptFields):
    """A demonstration: `messages` is the whole conversation, ending with an assistant turn.
    Training puts the loss on the assistant turns only."""

    id: str
    messages: list[Message] = Field(min_length=2)
    labeler: Pseudonym
    origin: Literal["demonstration", "ranking_better_answer", "imported"]
    time_spent_ms: int | None


class RankedCompletion(Record):
    id: str
    text: str
    rank: int = Field(ge=1, description="Dense rank, 1 is best; equal ranks are ties.")
    quality: int | None = Field(ge=1, le=7, description="Overall quality, 1-7 (Likert).")
    flags: list[str] = Field(description="Sorted flag names, e.g. 'hallucination'.")
    model: str | None = Field(description="The model that wrote it, when known.")


class RmRecord(PromptFields):
    """One labeler's ranking of the K completions of one prompt (never a merged ranking).
    `context` is the conversation the completions answer; it ends with a user turn."""

    id: str
    context: list[Message] = Field(min_length=1)
    completions: list[RankedCompletion] = Field(min_length=2)
    labeler: Pseudonym
    labeler_group: Literal["training", "held_out", "imported"]
    all_bad: bool
    time_spent_ms: int | None


class PpoRecord(PromptFields):
    """A prompt for reinforcement learning: `context` ends with a user turn."""

    context: list[Message] = Field(min_length=1)


class PairRecord(Record):
    """The pairs view, derived from RM records on request (`pairs.<split>.jsonl`): one preferred
    and one less preferred answer to the same conversation, in the conversational format of
    TRL's reward trainer. Ties give no pair. Carries no ids, so that tools read it as is."""

    prompt: list[Message] = Field(min_length=1, description="The context; ends with a user turn.")
    chosen: list[Message] = Field(min_length=1, max_length=1)
    rejected: list[Message] = Field(min_length=1, max_length=1)


class Manifest(Record):
    schema_version: int
    created_at: str = Field(description="ISO 8601, UTC. The only time stamp in a snapshot.")
    filters: dict[str, object]
    split_policy: dict[str, object]
    counts: dict[str, int] = Field(description="Records per file name.")
    agreement: dict[str, object] | None
    sha256: dict[str, str] = Field(description="sha256 (hex) of every other file, by file name.")


RECORD_TYPES: dict[str, type[Record]] = {"sft": SftRecord, "rm": RmRecord, "ppo": PpoRecord}
# Written only when asked for (`--pairs all|best_vs_rest`).
DERIVED_TYPES: dict[str, type[Record]] = {"pairs": PairRecord}


def file_name(kind: str, split: str, suffix: str = "jsonl") -> str:
    return f"{kind}.{split}.{suffix}"


def json_schema() -> dict[str, object]:
    """The JSON Schema of every record type and the manifest, under `$defs`."""
    definitions: dict[str, object] = {}
    for name, model in [*RECORD_TYPES.items(), *DERIVED_TYPES.items(), ("manifest", Manifest)]:
        schema = model.model_json_schema(ref_template="#/$defs/{model}")
        definitions.update(schema.pop("$defs", {}))
        definitions[name] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Rankery export snapshot",
        "schema_version": SCHEMA_VERSION,
        "$defs": definitions,
    }


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
