"""What a labeler submits: prompts, demonstrations, rankings, skips. Shape rules live here;
rules that need the database (K range, which completions were shown) live in the services."""

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

MAX_TEXT_CHARS = 20_000
MAX_FEW_SHOT_PAIRS = 20
MAX_DIALOGUE_MESSAGES = 40

PROMPT_KINDS = {"plain": "Plain", "few_shot": "Few-shot", "user_based": "User-based"}
CATEGORIES = {
    "generation": "Generation",
    "open_qa": "Open QA",
    "brainstorming": "Brainstorming",
    "chat": "Chat",
    "rewrite": "Rewrite",
    "summarization": "Summarization",
    "classification": "Classification",
    "closed_qa": "Closed QA",
    "extraction": "Extraction",
    "other": "Other",
}
SKIP_REASONS = {
    "intent_unclear": "Intent unclear",
    "sensitive": "Sensitive content",
    "other": "Other",
}
FLAGS = {
    "fails_instruction": "Fails to follow the instruction",
    "hallucination": "Hallucination / made-up facts",
    "harmful": "Harmful or inappropriate",
    "sexual_or_violent": "Sexual or violent content",
}
QUALITY_SCALE = range(1, 8)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _no_control_characters(text: str) -> str:
    """Tabs and line breaks are text; other control characters are not (PostgreSQL cannot
    even store NUL), so they are refused with a message instead of failing in the database."""
    if match := _CONTROL.search(text):
        raise ValueError(
            f"the text contains a control character (U+{ord(match.group()):04X}); "
            "remove it and try again"
        )
    return text


Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS),
    AfterValidator(_no_control_characters),
]
OptionalText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=MAX_TEXT_CHARS),
    AfterValidator(_no_control_characters),
]
Language = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
]
PersonName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=100)]
SubmissionKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FewShotPair(Strict):
    query: Text
    response: Text


class PromptIn(Strict):
    kind: Literal["plain", "few_shot", "user_based"]
    category: Literal[tuple(CATEGORIES)]  # type: ignore[valid-type]
    language: Language = "en"
    instruction: Text
    use_case: OptionalText | None = None
    few_shot_pairs: list[FewShotPair] = Field(default_factory=list, max_length=MAX_FEW_SHOT_PAIRS)
    # Makes a resubmitted form (double click, retry) create the prompt once.
    submission_key: SubmissionKey | None = None
    # Names of real people in the prompt, marked by the labeler: held for an admin's review.
    person_names: list[PersonName] = Field(default_factory=list, max_length=20)
    # Save despite warnings (a likely duplicate, personal data) shown for the first attempt.
    confirm_warnings: bool = False

    @model_validator(mode="after")
    def _kind_rules(self) -> "PromptIn":
        if self.kind == "few_shot" and not self.few_shot_pairs:
            raise ValueError("a few-shot prompt needs at least one query/response pair")
        if self.kind != "few_shot" and self.few_shot_pairs:
            raise ValueError("only few-shot prompts have query/response pairs")
        if self.kind == "user_based" and not self.use_case:
            raise ValueError("a user-based prompt needs the use case it was written for")
        if self.kind != "user_based":
            self.use_case = None
        return self


class Message(Strict):
    role: Literal["user", "assistant"]
    content: Text


class SuggestionUse(Strict):
    """A dialogue turn (0 is the answer to the prompt) that started from a model suggestion."""

    turn: int = Field(ge=0, lt=MAX_DIALOGUE_MESSAGES)
    job_id: int


class DraftTurn(Strict):
    role: Literal["user", "assistant"]
    content: OptionalText


class SuggestIn(Strict):
    """A dialogue as written so far, and the assistant turn a suggestion is wanted for."""

    turns: list[DraftTurn] = Field(max_length=MAX_DIALOGUE_MESSAGES)
    turn: int = Field(ge=0, lt=MAX_DIALOGUE_MESSAGES)


class DemonstrationIn(Strict):
    """Either a single answer, or the dialogue turns written after the prompt (assistant first)."""

    kind: Literal["single", "dialogue"]
    answer: OptionalText | None = None
    turns: list[Message] = Field(default_factory=list, max_length=MAX_DIALOGUE_MESSAGES)
    suggestions: list[SuggestionUse] = Field(default_factory=list, max_length=MAX_DIALOGUE_MESSAGES)

    @model_validator(mode="after")
    def _shape(self) -> "DemonstrationIn":
        if self.kind == "single":
            if not self.answer:
                raise ValueError("the answer is empty")
            if self.turns:
                raise ValueError("a single answer has no dialogue turns")
            return self
        if not self.turns:
            raise ValueError("a dialogue needs at least one assistant turn")
        for i, turn in enumerate(self.turns):
            expected = "assistant" if i % 2 == 0 else "user"
            if turn.role != expected:
                raise ValueError(
                    f"turn {i + 1} should be the {expected}'s: the dialogue alternates, "
                    "starting with the assistant's answer to the prompt"
                )
        if self.turns[-1].role != "assistant":
            raise ValueError("a dialogue must end with an assistant turn")
        return self


class CompletionJudgement(Strict):
    completion_id: int
    rank: int = Field(ge=1, le=9)
    quality: int | None = Field(default=None, ge=1, le=7)
    flags: list[Literal[tuple(FLAGS)]] = Field(default_factory=list)  # type: ignore[valid-type]


class RankingIn(Strict):
    """Rank 1 is best. Equal ranks are ties and are accepted only when has_ties is stated."""

    judgements: list[CompletionJudgement] = Field(min_length=2, max_length=9)
    has_ties: bool = False
    all_bad: bool = False
    better_answer: OptionalText | None = None

    @model_validator(mode="after")
    def _ordering(self) -> "RankingIn":
        ids = [j.completion_id for j in self.judgements]
        if len(set(ids)) != len(ids):
            raise ValueError("a completion appears twice in the ranking")
        ranks = sorted(j.rank for j in self.judgements)
        if not self.has_ties and ranks != list(range(1, len(ranks) + 1)):
            raise ValueError(
                "the ranks must be 1 to K, each used once (mark ties explicitly to reuse a rank)"
            )
        if self.has_ties and ranks[0] != 1:
            raise ValueError("the best completion must have rank 1")
        if self.better_answer and not self.all_bad:
            raise ValueError("a better answer goes with the 'all are bad' flag")
        return self


class SkipIn(Strict):
    reason: Literal[tuple(SKIP_REASONS)]  # type: ignore[valid-type]
    note: OptionalText | None = None


class ComparisonIn(Strict):
    """a and b are the first and second answer in the order the task showed them."""

    choice: Literal["a", "b", "tie"]
