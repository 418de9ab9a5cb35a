"""What an admin asks for when making an export snapshot (web form, API, CLI)."""

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field, model_validator

from app.schemas.labeling import Strict

# InstructGPT kept at most 200 prompts per user ID.
DEFAULT_PROMPTS_PER_AUTHOR = 200
# A labeler's agreement is judged once this many of their rankings were compared with another
# labeler's ranking of the same item; fewer say too little, and the labeler is kept.
MIN_AGREEMENT_COMPARISONS = 10
LabelerGroup = Literal["training", "held_out", "imported"]


class ExportRequest(Strict):
    """Filters select records; each record is kept when it passes all of them."""

    project_id: int | None = Field(default=None, description="Only this project (default: all).")
    since: datetime | None = Field(default=None, description="Records created at or after (UTC).")
    until: datetime | None = Field(default=None, description="Records created before (UTC).")
    labeler_groups: list[LabelerGroup] = Field(
        default=["training", "imported"],
        min_length=1,
        description="Whose rankings and demonstrations: training labelers, held-out labelers "
        "(left out by default: they check that models generalize), imported data.",
    )
    exclude_labelers: list[str] = Field(
        default_factory=list, description="Usernames whose work is left out."
    )
    min_labeler_agreement: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Leave out labelers whose pairwise agreement with the other labelers is "
        f"below this share (0-1), once {MIN_AGREEMENT_COMPARISONS} or more of their rankings "
        "have been compared (none: keep all). Measured as the quality page does, over all "
        "their rankings in the exported projects.",
    )
    max_prompts_per_author: int | None = Field(
        default=DEFAULT_PROMPTS_PER_AUTHOR,
        ge=1,
        description="Keep each author's earliest prompts only (none: keep all).",
    )
    include_too_fast: bool = Field(
        default=False, description="Keep work flagged as submitted implausibly fast."
    )
    include_gold: bool = Field(
        default=False, description="Keep labelers' rankings of gold items (researchers' prompts)."
    )
    format: Literal["jsonl", "parquet", "both"] = "jsonl"
    pairs: Literal["none", "all", "best_vs_rest"] = Field(
        default="none", description="Also write the prompt/chosen/rejected pairs view."
    )

    @model_validator(mode="after")
    def _window(self) -> "ExportRequest":
        if self.since and self.until and self.since >= self.until:
            raise ValueError("the time window is empty: 'since' must be before 'until'")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is not None:
                # Stored times are naive UTC.
                setattr(self, name, value.astimezone(UTC).replace(tzinfo=None))
        self.labeler_groups = sorted(set(self.labeler_groups))  # type: ignore[assignment]
        self.exclude_labelers = sorted(set(self.exclude_labelers))
        return self
