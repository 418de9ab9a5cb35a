"""Shapes for what admins (and importers) send."""

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from app.schemas.labeling import CATEGORIES, Language, Strict, Text

Username = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.-]{3,64}$")
]
PASSWORD_MIN, PASSWORD_MAX = 8, 256
# The most used passwords that pass the length rule; guessing starts with them.
# fmt: off
COMMON_PASSWORDS = frozenset((
    "password", "password1", "password123", "passw0rd", "12345678", "123456789", "1234567890",
    "123123123", "11111111", "00000000", "qwertyui", "qwertyuiop", "qwerty123", "1q2w3e4r",
    "1qaz2wsx", "abcd1234", "abc12345", "iloveyou", "sunshine", "princess", "football",
    "baseball", "welcome1", "letmein1", "trustno1", "superman", "changeme", "admin123",
    "administrator",
))
# fmt: on


def check_password(password: str, username: str) -> str:
    """The password, if it follows the rules; else ValueError with a sentence saying which."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ValueError(
            f"the password must have {PASSWORD_MIN} to {PASSWORD_MAX} characters "
            f"(this one has {len(password)})"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise ValueError("the password must not contain control characters")
    if len(set(password)) < 4:
        raise ValueError("the password must use at least 4 different characters")
    if username and username.lower() in password.lower():
        raise ValueError("the password must not contain the username")
    if password.lower() in COMMON_PASSWORDS:
        raise ValueError("this password is one of the most used ones; choose another")
    return password


K_LIMITS = (2, 9)
# Prompts keep this many normalized characters for finding long common prefixes.
DEDUP_KEY_CHARS = 400


class UserIn(Strict):
    username: Username
    password: str
    role: Literal["admin", "labeler", "candidate"] = "labeler"

    @model_validator(mode="after")
    def _password_rules(self) -> "UserIn":
        check_password(self.password, self.username)
        return self


class PasswordChangeIn(Strict):
    current_password: Annotated[str, StringConstraints(max_length=PASSWORD_MAX)]
    new_password: str
    confirm_password: str

    @model_validator(mode="after")
    def _confirmed(self) -> "PasswordChangeIn":
        if self.new_password != self.confirm_password:
            raise ValueError("the new password and its confirmation differ")
        return self


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
    # Shares of prompt authors per split; they apply to authors seen from now on.
    split_train: float = Field(default=0.8, ge=0, le=1)
    split_validation: float = Field(default=0.1, ge=0, le=1)
    split_test: float = Field(default=0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _k_range(self) -> "ProjectSettingsIn":
        if self.k_min > self.k_max:
            raise ValueError("the smallest K must not exceed the largest K")
        return self

    @model_validator(mode="after")
    def _split_ratios(self) -> "ProjectSettingsIn":
        total = self.split_train + self.split_validation + self.split_test
        if abs(total - 1) > 1e-6:
            raise ValueError(
                f"the train, validation and test ratios must add up to 1 (they add up to {total:g})"
            )
        return self


class CompletionIn(Strict):
    text: Text
    model: Annotated[str, StringConstraints(max_length=200)] | None = None
    sampling: dict[str, Any] | None = None
    # Names the completion in an imported `ranking` (and is kept as its external id).
    id: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None


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
    # A ranking made elsewhere: completion ids best first, each group a tie, e.g.
    # [["a"], ["b", "c"], ["d"]]. It is stored as a ranking by the account "imported:jsonl".
    ranking: list[list[str]] | None = None

    @model_validator(mode="after")
    def _one_prompt(self) -> "RankingItemIn":
        if (self.prompt_id is None) == (self.prompt is None):
            raise ValueError("give exactly one of prompt_id or prompt")
        return self

    @model_validator(mode="after")
    def _ranking_covers_the_completions(self) -> "RankingItemIn":
        if self.ranking is None:
            return self
        ids = [c.id for c in self.completions]
        if None in ids:
            raise ValueError("with a ranking, every completion needs an id")
        if len(set(ids)) != len(ids):
            raise ValueError("two completions have the same id")
        if len(ids) < 2:
            raise ValueError("a ranking needs at least 2 completions (K >= 2)")
        ranked = [cid for group in self.ranking for cid in group]
        for cid in ranked:
            if cid not in ids:
                raise ValueError(f"the ranking names completion {cid!r}, which this line lacks")
        if len(set(ranked)) != len(ranked):
            raise ValueError("the ranking names a completion twice")
        missing = [cid for cid in ids if cid not in ranked]
        if missing:
            raise ValueError(f"the ranking leaves out completion {missing[0]!r}")
        return self

    def ranks(self) -> list[int]:
        """The rank of each completion (1 is best), in the order of `completions`."""
        rank_of = {cid: n for n, group in enumerate(self.ranking or [], 1) for cid in group}
        return [rank_of[c.id] for c in self.completions if c.id is not None]


class TokenIn(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
