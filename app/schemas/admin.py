"""Shapes for what admins (and importers) send."""

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from app.schemas.labeling import CATEGORIES, Language, Strict, Text

Username = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.-]{3,64}$")
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
K_LIMITS = (2, 9)
# Prompts keep this many normalized characters for finding long common prefixes.
DEDUP_KEY_CHARS = 400


class UserIn(Strict):
    username: Username
    password: Password
    role: Literal["admin", "labeler", "candidate"] = "labeler"


class GroupIn(Strict):
    labeler_group: Literal["training", "held_out"]


class ProjectSettingsIn(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    guidelines: Annotated[str, StringConstraints(max_length=100_000)] = ""
    k_min: int = Field(default=4, ge=K_LIMITS[0], le=K_LIMITS[1])
    k_max: int = Field(default=9, ge=K_LIMITS[0], le=K_LIMITS[1])
    lease_seconds: int = Field(default=1800, ge=60, le=7 * 24 * 3600)
    annotations_per_item: int = Field(default=1, ge=1, le=20)
    overlap_percent: int = Field(default=10, ge=0, le=100)
    overlap_annotations: int = Field(default=2, ge=2, le=20)
    max_prompts_per_user: int = Field(default=200, ge=1, le=100_000)
    dedup_min_prefix: int = Field(default=100, ge=10, le=DEDUP_KEY_CHARS)
    dedup_prefix_percent: int = Field(default=90, ge=50, le=100)
    gold_percent: int = Field(default=0, ge=0, le=100)
    min_task_ms: int = Field(default=0, ge=0, le=3_600_000)
    min_task_median_percent: int = Field(default=0, ge=0, le=100)
    too_fast_review_count: int = Field(default=5, ge=1, le=100_000)

    @model_validator(mode="after")
    def _k_range(self) -> "ProjectSettingsIn":
        if self.k_min > self.k_max:
            raise ValueError("the smallest K must not exceed the largest K")
        return self


class CompletionIn(Strict):
    text: Text
    model: Annotated[str, StringConstraints(max_length=200)] | None = None
    sampling: dict[str, Any] | None = None


class NewPromptIn(Strict):
    """A prompt that arrives with its completions (e.g. from a deployed model's users)."""

    instruction: Text
    category: Literal[tuple(CATEGORIES)] = "other"  # type: ignore[valid-type]
    language: Language = "en"
    user_id: Annotated[str, StringConstraints(max_length=128)] | None = None


class RankingItemIn(Strict):
    """One line of a completions import: an existing prompt (by id) or a new one, plus K answers."""

    prompt_id: int | None = None
    prompt: NewPromptIn | None = None
    completions: list[CompletionIn] = Field(min_length=1, max_length=9)

    @model_validator(mode="after")
    def _one_prompt(self) -> "RankingItemIn":
        if (self.prompt_id is None) == (self.prompt is None):
            raise ValueError("give exactly one of prompt_id or prompt")
        return self


class TokenIn(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
