"""Jobs as admins see them: create (parameters validated per kind, references checked), list,
cancel and retry. The worker side (claim, heartbeat, finish) is app/services/leases.py."""

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.errors import Conflict, InvalidInput, NotFound, validated
from app.models import Job, ModelVersion, Project, Prompt, User
from app.models.base import utcnow
from app.models.jobs import FINISHED_STATES
from app.schemas.jobs import PARAMS, EvaluateParams, JobIn, PpoParams, SampleParams, TrainParams
from app.services import audit, evaluations

# The snapshot files each training stage reads (train split).
STAGE_FILES = {"sft": ["sft"], "rm": ["rm"], "ppo": ["ppo"]}


def create_job(session: Session, data: JobIn, user: User | None, data_dir: Path) -> Job:
    params = validated(PARAMS[data.kind], data.params)
    if isinstance(params, SampleParams):
        _check_sample(session, params)
    elif isinstance(params, EvaluateParams):
        params = evaluations.check_params(session, params)
    else:
        assert isinstance(params, TrainParams)
        _check_training(session, data.kind, params, data_dir)
    job = Job(
        kind=data.kind,
        params=params.model_dump(mode="json"),
        gpus=data.gpus,
        created_by_id=user.id if user else None,
    )
    session.add(job)
    audit.record(
        session, user, "job.created", job, after={"kind": job.kind, "gpus": job.gpus, **job.params}
    )
    session.commit()
    return job


def default_params(kind: str) -> dict[str, Any]:
    """The defaults of a kind's parameters that have one (shown on the create form)."""
    fields = PARAMS[kind].model_fields
    return {name: f.default for name, f in fields.items() if not f.is_required()}


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id, options=[selectinload(Job.metrics)])
    if job is None:
        raise NotFound(f"There is no job {job_id}.")
    return job


def list_jobs(session: Session, limit: int = 200) -> list[Job]:
    return list(session.scalars(select(Job).order_by(Job.id.desc()).limit(limit)))


def cancel_job(session: Session, job_id: int, actor: User | None = None) -> Job:
    """A queued job is cancelled at once; a running one at its worker's next heartbeat."""
    job = get_job(session, job_id)
    if job.state in FINISHED_STATES:
        raise Conflict(f"Job {job_id} already {job.state}; there is nothing to cancel.")
    before = {"state": job.state, "cancel_requested": job.cancel_requested}
    if job.state == "queued":
        job.state, job.finished_at = "cancelled", utcnow()
    job.cancel_requested = True
    after = {"state": job.state, "cancel_requested": True}
    audit.record(session, actor, "job.cancelled", job, before, after)
    session.commit()
    return job


def retry_job(session: Session, job_id: int, user: User | None) -> Job:
    """A new job with the same kind and parameters as a failed or cancelled one."""
    job = get_job(session, job_id)
    if job.state not in ("failed", "cancelled"):
        raise Conflict(f"Job {job_id} is {job.state}; only failed or cancelled jobs are retried.")
    retry = Job(
        kind=job.kind,
        params=dict(job.params),
        gpus=job.gpus,
        created_by_id=user.id if user else None,
    )
    session.add(retry)
    audit.record(session, user, "job.retried", retry, after={"retry_of": job.id})
    session.commit()
    return retry


def resolve_snapshot(reference: str, data_dir: Path) -> Path:
    """A snapshot id names DATA_DIR/exports/<id>; anything with a slash is a path."""
    if "/" in reference or reference.startswith("."):
        return Path(reference).resolve()
    return (data_dir / "exports" / reference).resolve()


def _check_training(session: Session, kind: str, params: TrainParams, data_dir: Path) -> None:
    model = _version(session, params.model_version_id, "model_version_id")
    if model.kind == "reward":
        raise InvalidInput(f"model_version_id: {model.name} is a reward model, not a policy.")
    reward_id = getattr(params, "reward_model_version_id", None)
    if reward_id is not None:
        reward = _version(session, reward_id, "reward_model_version_id")
        if reward.kind != "reward":
            raise InvalidInput(f"reward_model_version_id: {reward.name} is not a reward model.")
    if isinstance(params, PpoParams) and params.minibatch_size > params.batch_size:
        raise InvalidInput("minibatch_size must not exceed batch_size.")
    needed = list(STAGE_FILES[kind])
    if isinstance(params, PpoParams) and params.ptx_coef > 0:
        needed.append("sft")  # the pretraining mix uses the demonstrations
    check_snapshot(resolve_snapshot(params.snapshot, data_dir), needed)


def check_snapshot(directory: Path, kinds: list[str]) -> None:
    """The snapshot exists and holds a non-empty train split of every kind the stage reads."""
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise InvalidInput(f"snapshot: {directory} is not an export snapshot (no manifest.json).")
    try:
        counts = json.loads(manifest_path.read_text(encoding="utf-8")).get("counts") or {}
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise InvalidInput(f"snapshot: {manifest_path} is not a valid manifest.") from None
    for kind in kinds:
        name = f"{kind}.train.jsonl"
        if not (directory / name).is_file() or not counts.get(name):
            raise InvalidInput(
                f"snapshot: {directory} has no {kind} records in its train split ({name}), "
                "which this stage needs."
            )


def _check_sample(session: Session, params: SampleParams) -> None:
    project = session.get(Project, params.project_id)
    if project is None:
        raise InvalidInput(f"project_id: there is no project {params.project_id}.")
    if not project.k_min <= params.k <= project.k_max:
        raise InvalidInput(
            f"k: {params.k} completions per prompt is outside the project's range "
            f"{project.k_min}..{project.k_max}."
        )
    for version_id in params.model_version_ids:
        if _version(session, version_id, "model_version_ids").kind == "reward":
            raise InvalidInput(f"model_version_ids: version {version_id} is a reward model.")
    found = set(
        session.scalars(
            select(Prompt.id).where(
                Prompt.id.in_(params.prompt_ids), Prompt.project_id == project.id
            )
        )
    )
    missing = [p for p in params.prompt_ids if p not in found]
    if missing:
        shown = ", ".join(map(str, missing[:10]))
        raise InvalidInput(f"prompt_ids: no prompt {shown} in project {project.name}.")


def _version(session: Session, version_id: int, field: str) -> ModelVersion:
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise InvalidInput(f"{field}: there is no model version {version_id}.")
    return version


def eta_seconds(job: Job, now: datetime | None = None) -> float | None:
    """Time left at the current attempt's pace, once it has made some progress."""
    done = job.step - job.start_step
    if job.state != "running" or not job.total_steps or done <= 0 or job.started_at is None:
        return None
    elapsed = ((now or utcnow()) - job.started_at).total_seconds()
    return elapsed / done * (job.total_steps - job.step)


def metric_series(job: Job) -> dict[str, list[tuple[float, float]]]:
    """Each numeric metric's (step, value) points, in the order the run logged them."""
    series: dict[str, list[tuple[float, float]]] = {}
    for metric in job.metrics:
        for name, value in metric.values.items():
            if name != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                series.setdefault(name, []).append((metric.step, float(value)))
    return series
