"""Shapes for gold answers, screening tests and the admin's review of candidates."""

from typing import Literal

from pydantic import Field, model_validator

from app.schemas.labeling import CATEGORIES, FLAGS, Strict, Text

Flag = Literal[tuple(FLAGS)]  # type: ignore[valid-type]
NO_ANSWERS = (
    "an item needs researcher answers: a gold ranking, gold flags, or both (a screening test "
    "or gold item without them could not be scored)"
)


class GoldItemIn(Strict):
    """A ranking item with the researchers' answer. gold_ranks[i] and gold_flags[i] belong to
    completions[i]; rank 1 is best and equal ranks are ties."""

    instruction: Text
    category: Literal[tuple(CATEGORIES)] = "other"  # type: ignore[valid-type]
    completions: list[Text] = Field(min_length=2, max_length=9)
    gold_ranks: list[int] | None = None
    gold_flags: list[list[Flag]] | None = None

    @model_validator(mode="after")
    def _answers(self) -> "GoldItemIn":
        k = len(self.completions)
        if self.gold_ranks is None and self.gold_flags is None:
            raise ValueError(NO_ANSWERS)
        if self.gold_ranks is not None:
            if len(self.gold_ranks) != k:
                raise ValueError(f"the gold ranking needs a rank for each of the {k} completions")
            if min(self.gold_ranks) != 1 or max(self.gold_ranks) > k:
                raise ValueError(f"gold ranks go from 1 (best) to {k}")
        if self.gold_flags is not None and len(self.gold_flags) != k:
            raise ValueError(f"the gold flags need a list for each of the {k} completions")
        return self


class ScreeningPromptIn(Strict):
    """A prompt the candidate answers with a demonstration, graded by an admin afterwards."""

    instruction: Text
    category: Literal[tuple(CATEGORIES)] = "other"  # type: ignore[valid-type]


class ScreeningSettingsIn(Strict):
    """Pass thresholds: a candidate passes when every score they have meets its threshold."""

    min_agreement_percent: int = Field(default=70, ge=0, le=100)
    min_flag_accuracy_percent: int = Field(default=80, ge=0, le=100)
    min_demonstration_grade: int = Field(default=5, ge=1, le=7)


class GradeIn(Strict):
    grade: int = Field(ge=1, le=7)


class DecisionIn(Strict):
    """approve: labeler, training group; held_out: labeler, held-out group; reject: deactivated."""

    decision: Literal["approve", "held_out", "reject"]
