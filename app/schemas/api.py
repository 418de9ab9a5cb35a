"""Response shapes of the JSON API. A labeler-facing shape never carries a completion's source."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class UserOut(Out):
    id: int
    username: str
    role: str
    labeler_group: str
    is_active: bool
    created_at: datetime


class UserActiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    is_active: bool


class TokenOut(Out):
    id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None


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
    created_at: datetime


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
    served_at: datetime
    lease_expires_at: datetime


class WaitingOut(BaseModel):
    ranking: int
    demonstration: int


class TodayOut(BaseModel):
    prompts: int
    demonstrations: int
    rankings: int
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
    created_at: datetime
    entries: list[RankingEntryOut]


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
    created_at: datetime


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
    created_at: datetime
    finished_at: datetime | None
    request: dict[str, Any]
    records_done: int
    records_total: int | None
    counts: dict[str, int] | None
    error: str | None


class Health(BaseModel):
    status: str
