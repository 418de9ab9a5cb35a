"""Evaluate jobs: two policy versions answer the same test-split prompts, and labelers of one
group compare the two answers pairwise (InstructGPT's final evaluation: a win rate).

- Prompts: the project's **test-split** prompts that hygiene lets into queues (or the ones the
  admin names, which must be such prompts). The split is by author, and exports give training
  only the train split, so no model trained here saw these prompts. They are fixed when the
  job is created, so a retry answers the same prompts.
- Tasks: each prompt becomes one comparison item (kind "comparison", two completions, one from
  each version) with `annotations_per_prompt` slots, served through the normal queue only to
  labelers of the job's group. The queue shows each labeler the two answers in their own
  random order (Task.completion_order) and never their source.
- Win rate of A over B = (wins + ties / 2) / comparisons, with a 95 % Wilson score interval:
  it is closed-form and deterministic, stays inside [0, 1] and does not collapse to a point at
  0 % or 100 % or for a handful of comparisons, as a bootstrap does. With ties as half a win
  the outcome takes the values 0, 1/2 and 1, whose variance is at most p(1 - p), so the
  binomial interval is, if anything, slightly conservative. When one pair is compared by
  several labelers their choices are not independent, and the interval is too narrow by the
  (small) design effect; the default is one labeler per pair.
"""

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, describe_validation_error
from app.models import Comparison, Completion, Item, Job, ModelVersion, Project, Prompt, Slot, User
from app.schemas.jobs import EvaluateParams
from app.schemas.labeling import Text
from app.services import hygiene

Z_95 = 1.959963984540054


# --- Win rates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WinRate:
    """How often A was preferred to B: wins, ties and losses of A, the rate (ties count half)
    and its 95 % Wilson interval; rate and interval are None before the first comparison."""

    wins: int
    ties: int
    losses: int
    rate: float | None
    low: float | None
    high: float | None

    @property
    def comparisons(self) -> int:
        return self.wins + self.ties + self.losses

    def flipped(self) -> "WinRate":
        """The same comparisons seen from B."""
        return WinRate(
            self.losses,
            self.ties,
            self.wins,
            None if self.rate is None else 1 - self.rate,
            None if self.high is None else 1 - self.high,
            None if self.low is None else 1 - self.low,
        )


def wilson_interval(score: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for a proportion `score` observed over n trials."""
    if n <= 0:
        raise ValueError("the interval needs at least one trial")
    denominator = 1 + z * z / n
    centre = (score + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(score * (1 - score) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def win_rate(wins: int, ties: int, losses: int) -> WinRate:
    n = wins + ties + losses
    if n == 0:
        return WinRate(0, 0, 0, None, None, None)
    rate = (wins + ties / 2) / n
    low, high = wilson_interval(rate, n)
    return WinRate(wins, ties, losses, rate, low, high)


# --- Creating the job -----------------------------------------------------------------------


def check_params(session: Session, params: EvaluateParams) -> EvaluateParams:
    """The parameters with their prompts fixed; InvalidInput names what is wrong."""
    project = session.get(Project, params.project_id)
    if project is None:
        raise InvalidInput(f"project_id: there is no project {params.project_id}.")
    if params.model_version_a_id == params.model_version_b_id:
        raise InvalidInput(
            "model_version_b_id: the same version as A; an evaluation compares two versions."
        )
    for field in ("model_version_a_id", "model_version_b_id"):
        version_id = getattr(params, field)
        version = session.get(ModelVersion, version_id)
        if version is None:
            raise InvalidInput(f"{field}: there is no model version {version_id}.")
        if version.kind != "policy":
            raise InvalidInput(
                f"{field}: {version.name} is a {version.kind} model; an evaluation compares "
                "policies (SFT or PPO versions)."
            )
    labelers = session.scalar(
        select(func.count()).where(
            User.role == "labeler", User.is_active, User.labeler_group == params.labeler_group
        )
    )
    if not labelers:
        raise InvalidInput(
            f"labeler_group: there are no active {params.labeler_group} labelers to compare "
            "the answers."
        )
    usable = select(Prompt.id).where(
        Prompt.project_id == project.id, Prompt.split == "test", hygiene.usable()
    )
    if params.prompt_ids:
        found = set(session.scalars(usable.where(Prompt.id.in_(params.prompt_ids))))
        if missing := [p for p in params.prompt_ids if p not in found]:
            shown = ", ".join(map(str, missing[:10]))
            raise InvalidInput(
                f"prompt_ids: {shown} {'is not a' if len(missing) == 1 else 'are not'} "
                f"usable test-split prompt{'' if len(missing) == 1 else 's'} of project "
                f"{project.name}."
            )
        chosen = list(dict.fromkeys(params.prompt_ids))
    else:
        chosen = list(session.scalars(usable.order_by(Prompt.id).limit(params.max_prompts)))
    if not chosen:
        raise InvalidInput(
            f"Project {project.name} has no test-split prompts to evaluate on (prompts are "
            "split by author; add prompts from more authors, or import some)."
        )
    return params.model_copy(update={"prompt_ids": chosen})


# --- The worker's result: comparison tasks ----------------------------------------------------


class _Answer(BaseModel):
    text: Text  # what labelers will read: no control characters, as for sampled completions
    model_version_id: int


class _Answered(BaseModel):
    prompt_id: int
    completions: list[_Answer]


class _Result(BaseModel):
    items: list[_Answered]


def add_comparisons(session: Session, job: Job, result: dict[str, Any]) -> list[Item]:
    """One comparison item per answered prompt (added, not committed: finishing the job
    commits). A result that does not match the job is refused whole."""
    try:
        answered = _Result.model_validate(result)
    except ValidationError as exc:
        raise InvalidInput(f"result: {describe_validation_error(exc)}") from None
    params = job.params
    pair = [params["model_version_a_id"], params["model_version_b_id"]]
    wanted = set(params["prompt_ids"])
    names = {v: session.get(ModelVersion, v) for v in pair}
    sampling = {k: params[k] for k in ("temperature", "top_p", "max_new_tokens", "seed")}
    seen: set[int] = set()
    for number, entry in enumerate(answered.items, start=1):
        if entry.prompt_id not in wanted or entry.prompt_id in seen:
            raise InvalidInput(
                f"result item {number}: prompt {entry.prompt_id} is not one of this job's "
                "prompts, or it came twice."
            )
        seen.add(entry.prompt_id)
        if sorted(c.model_version_id for c in entry.completions) != sorted(pair):
            raise InvalidInput(
                f"result item {number}: expected one answer from each of versions "
                f"{pair[0]} and {pair[1]}."
            )
    if not answered.items:
        raise InvalidInput("result: the evaluate job returned no answers.")
    items = []
    for entry in answered.items:
        item = Item(
            project_id=params["project_id"],
            prompt_id=entry.prompt_id,
            kind="comparison",
            job_id=job.id,
            labeler_group=params["labeler_group"],
        )
        ordered = sorted(entry.completions, key=lambda c: pair.index(c.model_version_id))
        item.completions = [
            Completion(
                position=position,
                text=answer.text,
                model_name=_label(names[answer.model_version_id], answer.model_version_id),
                model_version_id=answer.model_version_id,
                sampling={**sampling, "job_id": job.id},
            )
            for position, answer in enumerate(ordered)
        ]
        items.append(item)
    session.add_all(items)
    session.flush()
    session.add_all(
        Slot(item_id=item.id, index=i)
        for item in items
        for i in range(params["annotations_per_prompt"])
    )
    return items


def _label(version: ModelVersion | None, version_id: int) -> str:
    return f"{version.name} (v{version_id})" if version else f"v{version_id}"


# --- Reading the results ----------------------------------------------------------------------


@dataclass(frozen=True)
class JobEvaluation:
    """An evaluate job's progress and outcome: A's win rate over B."""

    job: Job
    version_a: ModelVersion | None
    version_b: ModelVersion | None
    pairs: int  # comparison items (prompts answered by both)
    wanted: int  # comparisons asked of labelers
    result: WinRate


def job_evaluation(session: Session, job: Job) -> JobEvaluation:
    if job.kind != "evaluate":
        raise InvalidInput(f"Job {job.id} is a {job.kind} job, not an evaluation.")
    a_id, b_id = job.params["model_version_a_id"], job.params["model_version_b_id"]
    pairs = session.scalar(select(func.count()).where(Item.job_id == job.id)) or 0
    # add_comparisons puts A's answer at position 0.
    tally = _tallies(session, Item.job_id == job.id).get((a_id, b_id), (0, 0, 0))
    return JobEvaluation(
        job=job,
        version_a=session.get(ModelVersion, a_id),
        version_b=session.get(ModelVersion, b_id),
        pairs=pairs,
        wanted=pairs * job.params["annotations_per_prompt"],
        result=win_rate(*tally),
    )


@dataclass(frozen=True)
class PairWinRate:
    """Version a's win rate over version b, over every evaluation of the two."""

    a: int
    b: int
    result: WinRate


def version_win_rates(session: Session, version_ids: list[int] | None = None) -> list[PairWinRate]:
    """Every pair of versions that labelers compared (among `version_ids`, if given), each
    once, lower id as a, over all evaluate jobs of the pair."""
    tallies = _tallies(session, Item.kind == "comparison")
    merged: dict[tuple[int, int], list[int]] = {}
    for (first, second), (wins, ties, losses) in tallies.items():
        if version_ids is not None and not {first, second} <= set(version_ids):
            continue
        key, counts = (first, second), [wins, ties, losses]
        if first > second:
            key, counts = (second, first), [losses, ties, wins]
        total = merged.setdefault(key, [0, 0, 0])
        for i, count in enumerate(counts):
            total[i] += count
    return [PairWinRate(a, b, win_rate(*merged[(a, b)])) for a, b in sorted(merged)]


def win_rate_matrix(session: Session, version_ids: list[int]) -> dict[tuple[int, int], WinRate]:
    """(row, column) -> the row version's win rate over the column version, where compared."""
    matrix = {}
    for pair in version_win_rates(session, version_ids):
        matrix[(pair.a, pair.b)] = pair.result
        matrix[(pair.b, pair.a)] = pair.result.flipped()
    return matrix


def _tallies(session: Session, where) -> dict[tuple[int, int], tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    """(version at position 0, version at position 1) -> (wins, ties, losses) of the first,
    over the comparisons of the items matching `where`. Comparisons flagged too fast are left
    out, as they are left out of training data."""
    first, second = Completion.__table__.alias("first"), Completion.__table__.alias("second")
    rows = session.execute(
        select(
            first.c.model_version_id,
            second.c.model_version_id,
            func.count().filter(Comparison.winner_id == first.c.id),
            func.count().filter(Comparison.winner_id.is_(None)),
            func.count().filter(Comparison.winner_id == second.c.id),
        )
        .select_from(Comparison)
        .join(Item, Item.id == Comparison.item_id)
        .join(first, (first.c.item_id == Item.id) & (first.c.position == 0))
        .join(second, (second.c.item_id == Item.id) & (second.c.position == 1))
        .where(where, Item.kind == "comparison", Comparison.too_fast.is_(False))
        .group_by(first.c.model_version_id, second.c.model_version_id)
    )
    return {(a, b): (wins, ties, losses) for a, b, wins, ties, losses in rows}
