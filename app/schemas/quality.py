"""Shapes for the data-quality statistics: which work to look at."""

from datetime import date

from pydantic import Field, model_validator

from app.schemas.labeling import Strict


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
