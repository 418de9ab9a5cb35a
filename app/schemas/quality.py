"""Shapes for the data-quality statistics: which work to look at."""

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas.labeling import Strict
from app.schemas.times import UtcDateTime


class StatsFilter(Strict):
    """A time window (inclusive dates, UTC) and a labeler group; empty means everything."""

    since: date | None = None
    until: date | None = None
    labeler_ids: list[int] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _window(self) -> "StatsFilter":
        if self.since and self.until and self.since > self.until:
            raise ValueError("the window's start (since) must not be after its end (until)")
        return self


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class AgreementSummaryOut(Out):
    rate: float | None = Field(description="Pooled pairwise agreement (share of completion pairs)")
    interval: tuple[float, float] | None = Field(description="Bootstrap 95 % interval (items)")
    alpha: float | None = Field(description="Krippendorff's alpha, ordinal metric")
    tau: float | None = Field(description="Mean Kendall's tau-b over comparisons")
    comparisons: int
    completion_pairs: int
    items_compared: int
    rankings: int


class GroupAgreementOut(Out):
    key: str = Field(description="training | held_out | held_out_vs_training")
    title: str
    rate: float | None
    interval: tuple[float, float] | None
    comparisons: int


class LabelerStatsOut(Out):
    labeler_id: int
    username: str
    agreement: float | None
    comparisons: int
    tau: float | None
    submitted: int
    skipped: int
    skip_rate: float | None
    median_seconds: float | None
    rankings: int
    all_bad_share: float | None
    flag_rates: dict[str, float | None]
    gold_agreement: float | None = Field(description="Agreement with the gold rankings")
    gold_rankings: int = Field(description="Gold items ranked (with a gold ranking)")


class GoldDayOut(BaseModel):
    username: str
    day: date
    agreement: float | None
    rankings: int


class TooFastLabelerOut(Out):
    labeler_id: int
    username: str
    flagged: int = Field(description="Submissions flagged too fast")
    submitted: int
    share: float


class PairStatsOut(Out):
    labeler_a: str
    labeler_b: str
    agreement: float | None
    comparisons: int
    tau: float | None


class DayAgreementOut(BaseModel):
    day: date
    rate: float | None
    comparisons: int


class DayCountOut(BaseModel):
    day: date
    submitted: int
    skipped: int


class TimeBinOut(Out):
    label: str
    count: int


class QualityReportOut(BaseModel):
    project_id: int
    filters: StatsFilter
    summary: AgreementSummaryOut
    groups: list[GroupAgreementOut]
    labelers: list[LabelerStatsOut]
    pairs: list[PairStatsOut]
    agreement_by_day: list[DayAgreementOut]
    throughput: list[DayCountOut]
    time_histogram: list[TimeBinOut]
    gold_by_day: list[GoldDayOut]
    too_fast: list[TooFastLabelerOut] = Field(
        description="Labelers with at least the project's too_fast_review_count flagged "
        "submissions (all time)"
    )


class ReviewIn(Strict):
    """An admin's decision on a prompt held for personal data."""

    decision: Literal["keep", "redact", "drop"]


class PiiFindingOut(BaseModel):
    kind: str
    text: str


class HeldPromptOut(Out):
    id: int
    instruction: str
    use_case: str | None
    few_shot_pairs: list[dict[str, str]] | None
    review_state: str
    pii_findings: list[PiiFindingOut] | None
    created_at: UtcDateTime


class UserOverCapOut(Out):
    user_key: str
    username: str
    prompts: int
    kept: int
    first_left_out_id: int
