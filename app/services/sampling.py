"""Sample jobs' results: K completions per prompt, drawn from model versions, enter the ranking
queue through the import service. Each completion keeps its source (model version and sampling
settings) for training; labelers never see it."""

from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from app.errors import InvalidInput, describe_validation_error
from app.models import Job, ModelVersion, Project
from app.schemas.admin import CompletionIn, RankingItemIn
from app.schemas.labeling import Text
from app.services.imports import add_ranking_items


class SampledCompletion(BaseModel):
    text: Text  # what labelers will read: no control characters, as for imported completions
    model_version_id: int


class SampledPrompt(BaseModel):
    prompt_id: int
    completions: list[SampledCompletion]


class SampleResult(BaseModel):
    items: list[SampledPrompt]


def add_samples(session: Session, job: Job, result: dict[str, Any]) -> list[int]:
    """Queues the job's completions for ranking (added, not committed); returns the item ids."""
    try:
        sampled = SampleResult.model_validate(result)
    except ValidationError as exc:
        raise InvalidInput(f"result: {describe_validation_error(exc)}") from None
    params = job.params
    project = session.get(Project, params["project_id"])
    if project is None:
        raise InvalidInput(f"The job's project {params['project_id']} no longer exists.")
    wanted, versions = set(params["prompt_ids"]), set(params["model_version_ids"])
    names = {v: session.get(ModelVersion, v) for v in versions}
    sampling = {k: params[k] for k in ("temperature", "top_p", "max_new_tokens", "seed")}
    lines = []
    for number, item in enumerate(sampled.items, start=1):
        if item.prompt_id not in wanted:
            raise InvalidInput(f"result item {number}: prompt {item.prompt_id} is not this job's.")
        if len(item.completions) != params["k"]:
            raise InvalidInput(
                f"result item {number}: {len(item.completions)} completions, "
                f"the job asked for {params['k']}."
            )
        completions = []
        for c in item.completions:
            if c.model_version_id not in versions:
                raise InvalidInput(
                    f"result item {number}: model version {c.model_version_id} is not this job's."
                )
            version = names[c.model_version_id]
            model = f"{version.name} (v{version.id})" if version else f"v{c.model_version_id}"
            completions.append(
                CompletionIn(text=c.text, model=model, sampling={**sampling, "job_id": job.id})
            )
        lines.append((number, RankingItemIn(prompt_id=item.prompt_id, completions=completions)))
    if not lines:
        raise InvalidInput("result: the sample job returned no completions.")
    report = add_ranking_items(session, project, lines, unit="result item")
    session.flush()
    return [i.id for i in report.items]
