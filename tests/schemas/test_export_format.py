import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.schemas.export import RmRecord, json_schema

SCHEMA_FILE = Path(__file__).parents[2] / "docs" / "export-format.schema.json"


def rm_record(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "id": "r1",
        "prompt_id": "p1",
        "split": "train",
        "prompt_kind": "plain",
        "category": "open_qa",
        "language": "en",
        "author": "u-1",
        "context": [{"role": "user", "content": "Why is the sky blue?"}],
        "completions": [
            {"id": "c1", "text": "Light.", "rank": 1, "quality": 6, "flags": [], "model": None},
            {"id": "c2", "text": "It is not.", "rank": 2, "quality": 1, "flags": [], "model": None},
        ],
        "labeler": "u-2",
        "labeler_group": "training",
        "all_bad": False,
        "time_spent_ms": 1200,
    }
    record.update(changes)
    return record


def test_the_committed_json_schema_is_generated_from_the_records() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), (
        "regenerate: python -m app.schemas.export > docs/export-format.schema.json"
    )


def test_a_complete_rm_record_validates() -> None:
    assert RmRecord.model_validate(rm_record()).completions[0].rank == 1


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        RmRecord.model_validate(rm_record(source="x"))


def test_a_ranking_needs_two_completions() -> None:
    with pytest.raises(ValidationError, match="at least 2"):
        RmRecord.model_validate(rm_record(completions=[rm_record()["completions"][0]]))
