"""Response shapes of the JSON API. A labeler-facing shape never carries a completion's source."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.times import UtcDateTime


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorOut(BaseModel):
    detail: str = Field(description="What was wrong, in a sentence for people.")


class InvalidRequestOut(BaseModel):
    """422: the app's own checks answer with a sentence; a request that does not fit the schema
    at all gets FastAPI's list of field errors."""

    detail: str | list[dict[str, Any]]


class UserOut(Out):
    id: int
    username: str
    role: str
    labeler_group: str
    is_active: bool
    created_at: UtcDateTime


class UserActiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    is_active: bool


class TokenOut(Out):
    id: int
    name: str
    created_at: UtcDateTime
    revoked_at: UtcDateTime | None


class TokenCreated(TokenOut):
    token: str  # shown once


class ProjectOut(Out):
    id: int
    name: str
    guidelines: str
    k_min: int
    k_max: int
    lease_seconds: int
    annotations_per_item: int
    overlap_percent: int
    overlap_annotations: int
    max_prompts_per_user: int
    dedup_min_prefix: int
    dedup_prefix_percent: int
    gold_percent: int
    min_task_ms: int
    min_task_median_percent: int
    too_fast_review_count: int
    split_train: float
    split_validation: float
    split_test: float


class PromptOut(Out):
    id: int
    project_id: int
    kind: str
    category: str
    language: str
    instruction: str
    use_case: str | None
    few_shot_pairs: list[dict[str, str]] | None
    time_spent_ms: int | None
    created_at: UtcDateTime


class PromptCreated(PromptOut):
    created: bool  # false when the submission_key had been used: nothing new was stored


class ShownCompletion(BaseModel):
    id: int
    text: str


class TaskOut(BaseModel):
    id: int
    kind: str
    state: str
    project_id: int
    prompt_id: int
    prompt_text: str
    prompt_kind: str
    category: str
    language: str
    completions: list[ShownCompletion]
    served_at: UtcDateTime
    lease_expires_at: UtcDateTime


class WaitingOut(BaseModel):
    ranking: int
    demonstration: int
    comparison: int


class TodayOut(BaseModel):
    prompts: int
    demonstrations: int
    rankings: int
    comparisons: int
    skips: int


class RankingEntryOut(Out):
    completion_id: int
    rank: int
    quality: int | None
    fails_instruction: bool
    hallucination: bool
    harmful: bool
    sexual_or_violent: bool


class RankingOut(Out):
    id: int
    task_id: int
    has_ties: bool
    all_bad: bool
    time_spent_ms: int | None
    created_at: UtcDateTime
    entries: list[RankingEntryOut]


class ComparisonOut(Out):
    id: int
    task_id: int
    winner_id: int | None  # the preferred completion; null for a tie
    time_spent_ms: int
    created_at: UtcDateTime


class MessageOut(BaseModel):
    role: str
    content: str


class DemonstrationOut(Out):
    id: int
    task_id: int | None
    prompt_id: int
    kind: str
    messages: list[MessageOut]
    time_spent_ms: int | None
    created_at: UtcDateTime


class TaskStateOut(Out):
    id: int
    state: str
    skip_reason: str | None


class ImportResult(BaseModel):
    created: int
    skipped: int  # imported before (same content): not added again
    item_ids: list[int]
    dropped_duplicates: list[str]  # new prompts left out: "item 3: duplicate of prompt 12"
    held_for_review: int  # new prompts with personal data, kept out of queues until reviewed


class FileImportResult(BaseModel):
    kind: str  # completions | oasst | pairs
    message: str
    counts: dict[str, int]
    dropped_duplicates: list[str]


class SnapshotOut(Out):
    id: str
    state: str  # queued | running | done | failed
    created_at: UtcDateTime
    finished_at: UtcDateTime | None
    request: dict[str, Any]
    records_done: int
    records_total: int | None
    counts: dict[str, int] | None
    error: str | None


class Health(BaseModel):
    status: str
