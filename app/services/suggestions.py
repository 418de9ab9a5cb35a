"""Dialogue suggestions: while a labeler writes the assistant's side of a dialogue
demonstration, the project's suggestion model proposes the turn, and the labeler edits it.

The model is the version an admin chose for the project, or else the newest policy (SFT or
PPO). A suggestion is a small "suggest" job in the ordinary job queue: workers claim it before
any other kind, generate the reply in their own process with the model kept loaded (no child
process), and finish the job with the text. We chose the queue over a generation endpoint in
the app because the app then never loads torch or a model, the workers already have the GPUs
and the models' files, and leases bring timeouts and "nobody is running" for free. The price is
latency: a worker polls for jobs every few seconds, and a worker busy with a long training run
takes no suggestion until it ends, so a suggestion nobody claims within SUGGEST_WAIT is given up
and the labeler is told.

The stored demonstration records the suggestions the labeler kept (turn, job, model version,
and whether they edited the text); the server checks each against the finished job.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound, describe_validation_error
from app.models import Job, ModelVersion, Project, Task, User, Worker
from app.models.base import utcnow
from app.schemas.labeling import DemonstrationIn, SuggestIn
from app.services.queue import own_task

SUGGEST_WAIT = timedelta(seconds=30)  # queued and unclaimed this long: given up
WORKER_SEEN = timedelta(seconds=60)  # a worker that claimed within this is running
SAMPLING = {"max_new_tokens": 128, "temperature": 0.7, "top_p": 0.9}
MAX_TEXT = 20_000


# --- The project's suggestion model --------------------------------------------------------


def suggestion_model(session: Session, project: Project) -> ModelVersion | None:
    """The admin's choice for the project, else the newest policy."""
    if project.suggestion_model_id is not None:
        return session.get(ModelVersion, project.suggestion_model_id)
    return session.scalar(
        select(ModelVersion)
        .where(ModelVersion.kind == "policy")
        .order_by(ModelVersion.id.desc())
        .limit(1)
    )


def choose_model(session: Session, project_id: int, version_id: int | None) -> Project:
    """Sets the project's suggestion model (None: the newest policy, whichever that is)."""
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"There is no project {project_id}.")
    if version_id is not None:
        version = session.get(ModelVersion, version_id)
        if version is None:
            raise InvalidInput(f"There is no model version {version_id}.")
        if version.kind == "reward":
            raise InvalidInput(f"{version.name} is a reward model; it cannot write replies.")
    project.suggestion_model_id = version_id
    session.commit()
    return project


# --- Asking for a suggestion ----------------------------------------------------------------


def request_suggestion(
    session: Session,
    task_id: int,
    labeler: User,
    data: SuggestIn,
    now: datetime | None = None,
) -> Job:
    """Queues a suggest job for assistant turn `turn` (0 is the answer to the prompt), given
    the turns written before it. Says clearly when no model or no worker can answer."""
    now = now or utcnow()
    task = own_task(session, task_id, labeler)
    if task.item.kind != "demonstration":
        raise InvalidInput("Suggestions are for demonstrations.")
    if task.state != "active":
        raise Conflict(f"This task is {task.state}; it takes no more suggestions.")
    turns, turn = data.turns, data.turn
    if turn % 2 or turn > len(turns):
        raise InvalidInput("Suggestions are for the assistant's turns.")
    for i, earlier in enumerate(turns[:turn]):
        if earlier.role != ("assistant" if i % 2 == 0 else "user"):
            raise InvalidInput("The dialogue alternates, starting with the assistant's answer.")
        if not earlier.content:
            raise InvalidInput(f"Write turn {i + 1} first: the suggestion continues from it.")
    project = task.item.project
    model = suggestion_model(session, project)
    if model is None:
        raise InvalidInput(
            "No model can suggest yet: there is no trained policy, and an admin has not chosen "
            "a model for this project. Write the turn yourself."
        )
    if not _worker_running(session, now):
        raise InvalidInput(
            "No worker is running to write a suggestion right now. Write the turn yourself."
        )
    context = task.item.prompt.messages() + [t.model_dump() for t in turns[:turn]]
    job = Job(
        kind="suggest",
        params={
            "project_id": project.id,
            "task_id": task.id,
            "turn": turn,
            "model_version_id": model.id,
            "messages": context,
            **SAMPLING,
        },
        gpus=1,
        created_by_id=labeler.id,
        created_at=now,
    )
    session.add(job)
    session.commit()
    return job


def _worker_running(session: Session, now: datetime) -> bool:
    return (
        session.scalar(
            select(Worker.id)
            .where(Worker.revoked_at.is_(None), Worker.last_seen_at >= now - WORKER_SEEN)
            .limit(1)
        )
        is not None
    )


@dataclass(frozen=True)
class Suggestion:
    """What the labeler's page shows: "generating", "ready" (with text) or "unavailable"."""

    job_id: int
    state: str
    text: str = ""
    message: str = ""


def get_suggestion(
    session: Session, task_id: int, job_id: int, labeler: User, now: datetime | None = None
) -> Suggestion:
    now = now or utcnow()
    job = _own_job(session, task_id, job_id, labeler)
    if job.state == "succeeded" and job.result:
        return Suggestion(job.id, "ready", text=job.result["text"])
    if job.state == "running" or (job.state == "queued" and now - job.created_at < SUGGEST_WAIT):
        return Suggestion(job.id, "generating")
    if job.state in ("queued", "cancelled"):
        message = "No worker was free to write a suggestion. Write the turn yourself or try again."
    else:
        message = "The suggestion failed. Write the turn yourself or try again."
    return Suggestion(job.id, "unavailable", message=message)


def _own_job(session: Session, task_id: int, job_id: int, labeler: User) -> Job:
    job = session.get(Job, job_id)
    if (
        job is None
        or job.kind != "suggest"
        or job.created_by_id != labeler.id
        or job.params.get("task_id") != task_id
    ):
        raise NotFound(f"There is no suggestion {job_id} for this task.")
    return job


def expire_unclaimed(session: Session, now: datetime) -> int:
    """Suggestions nobody claimed in time are given up, so no worker writes one late
    (part of a claim's unit of work; not committed here)."""
    return session.execute(
        update(Job)
        .where(Job.kind == "suggest", Job.state == "queued", Job.created_at < now - SUGGEST_WAIT)
        .values(state="cancelled", finished_at=now, error="No worker claimed it in time.")
        .execution_options(synchronize_session=False)
    ).rowcount


# --- The worker's answer and the demonstration's record --------------------------------------


class SuggestResult(BaseModel):
    text: str = Field(max_length=MAX_TEXT)


def checked_result(result: dict[str, Any]) -> dict[str, Any]:
    try:
        return SuggestResult.model_validate(result).model_dump()
    except ValidationError as exc:
        raise InvalidInput(f"result: {describe_validation_error(exc)}") from None


def used(
    session: Session, task: Task, labeler: User, data: DemonstrationIn
) -> list[dict[str, Any]]:
    """The suggestions a submitted dialogue kept, checked against their jobs: one record per
    assistant turn that started from a suggestion."""
    records = []
    for use in data.suggestions:
        job = _own_job(session, task.id, use.job_id, labeler)
        if job.state != "succeeded" or not job.result:
            raise InvalidInput(f"Suggestion {job.id} was never written, so it cannot be used.")
        if use.turn != job.params["turn"] or use.turn >= len(data.turns):
            raise InvalidInput(f"Suggestion {job.id} was written for another turn.")
        records.append(
            {
                "turn": use.turn,
                "job_id": job.id,
                "model_version_id": job.params["model_version_id"],
                "edited": data.turns[use.turn].content.strip() != job.result["text"].strip(),
            }
        )
    return records
