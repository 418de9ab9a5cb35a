"""Jobs as admins see them: create (parameters validated per kind, references checked), list,
cancel and retry. The worker side (claim, heartbeat, finish) is app/services/leases.py.

A training job trains on an export snapshot: an existing one, or one made with it (the
snapshot reference "new": the export filters' defaults). While its snapshot is being written the
job is "waiting"; when the snapshot is finished (`settle_waiting`) the job joins the queue, or
fails with the reason when the export failed or lacks the files the stage reads."""

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.config import Settings
from app.db import Database
from app.errors import Conflict, InvalidInput, NotFound, validated
from app.models import Job, ModelVersion, Project, Prompt, Snapshot, User
from app.models.base import utcnow
from app.models.jobs import FINISHED_STATES
from app.schemas.jobs import (
    NEW_SNAPSHOT,
    PARAMS,
    EvaluateParams,
    JobIn,
    PpoParams,
    SampleParams,
    TrainParams,
)
from app.schemas.snapshot import ExportRequest
from app.services import audit, evaluations, exports, hygiene

# The snapshot files each training stage reads (train split).
STAGE_FILES = {"sft": ["sft"], "rm": ["rm"], "ppo": ["ppo"]}
UNFINISHED_SNAPSHOT = ("queued", "running")


def create_job(
    session: Session,
    data: JobIn,
    user: User | None,
    settings: Settings,
    start_snapshot: Callable[[str], None] | None = None,
) -> Job:
    """Queues a job. With the snapshot "new", an export snapshot with the default filters is
    requested in the same commit and handed to `start_snapshot` (which writes it, now or in
    the background); the job waits for it."""
    params = validated(PARAMS[data.kind], data.params)
    state = "queued"
    made = None
    if isinstance(params, SampleParams):
        params = _check_sample(session, params)
    elif isinstance(params, EvaluateParams):
        params = evaluations.check_params(session, params)
    else:
        assert isinstance(params, TrainParams)
        _check_training(session, params)
        if params.snapshot == NEW_SNAPSHOT:
            if start_snapshot is None:
                raise InvalidInput("snapshot: this caller cannot make snapshots; name one.")
            made = exports.add_snapshot_request(session, settings, ExportRequest(), user)
            params.snapshot, state = made.id, "waiting"
        else:
            state = snapshot_gate(session, data.kind, params.model_dump(), settings.data_dir)
    job = Job(
        kind=data.kind,
        state=state,
        params=params.model_dump(mode="json"),
        gpus=data.gpus,
        created_by_id=user.id if user else None,
    )
    session.add(job)
    audit.record(
        session, user, "job.created", job, after={"kind": job.kind, "gpus": job.gpus, **job.params}
    )
    session.commit()
    if made is not None and start_snapshot is not None:
        start_snapshot(made.id)
    return job


def snapshot_gate(session: Session, kind: str, params: dict[str, Any], data_dir: Path) -> str:
    """ "waiting" while the job's snapshot is being written, "queued" once it holds the files
    the stage reads; InvalidInput (saying why) when it failed or lacks them."""
    reference = params["snapshot"]
    snapshot = (
        session.get(Snapshot, reference) if exports.SNAPSHOT_ID.fullmatch(reference) else None
    )
    if snapshot is not None and snapshot.state in UNFINISHED_SNAPSHOT:
        return "waiting"
    if snapshot is not None and snapshot.state == "failed":
        raise InvalidInput(
            f"snapshot: the export snapshot {reference} failed ({snapshot.error}). "
            "Choose another snapshot or make a new one."
        )
    check_snapshot(resolve_snapshot(reference, data_dir), stage_files(kind, params))
    return "queued"


def stage_files(kind: str, params: dict[str, Any]) -> list[str]:
    """The snapshot's record kinds a training stage reads."""
    needed = list(STAGE_FILES[kind])
    if kind == "ppo" and params.get("ptx_coef", 0) > 0:
        needed.append("sft")  # the pretraining mix uses the demonstrations
    return needed


def settle_waiting(session: Session, data_dir: Path, now: datetime | None = None) -> int:
    """Waiting jobs whose snapshot is finished join the queue, or fail with the reason
    (added, not committed). Returns how many changed."""
    changed = 0
    waiting = session.scalars(
        select(Job).where(Job.state == "waiting").order_by(Job.id).with_for_update(skip_locked=True)
    )
    for job in waiting:
        try:
            job.state = snapshot_gate(session, job.kind, job.params, data_dir)
        except InvalidInput as exc:
            job.state, job.error, job.finished_at = "failed", exc.message, now or utcnow()
        changed += job.state != "waiting"
    return changed


def write_snapshot(db: Database, settings: Settings, snapshot_id: str) -> None:
    """Writes a snapshot requested with a job, then lets the jobs waiting for it go on."""
    exports.run_snapshot(db, settings, snapshot_id)
    with db.session() as session:
        settle_waiting(session, settings.data_dir)
        session.commit()


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
    """The newest jobs, without the labelers' dialogue suggestions (small and many)."""
    query = select(Job).where(Job.kind != "suggest").order_by(Job.id.desc()).limit(limit)
    return list(session.scalars(query))


def cancel_job(session: Session, job_id: int, actor: User | None = None) -> Job:
    """A queued job is cancelled at once; a running one at its worker's next heartbeat."""
    job = get_job(session, job_id)
    if job.state in FINISHED_STATES:
        raise Conflict(f"Job {job_id} already {job.state}; there is nothing to cancel.")
    before = {"state": job.state, "cancel_requested": job.cancel_requested}
    if job.state in ("queued", "waiting"):
        job.state, job.finished_at = "cancelled", utcnow()
    job.cancel_requested = True
    after = {"state": job.state, "cancel_requested": True}
    audit.record(session, actor, "job.cancelled", job, before, after)
    session.commit()
    return job


def retry_job(session: Session, job_id: int, user: User | None, data_dir: Path) -> Job:
    """A new job with the same kind and parameters as a failed or cancelled one."""
    job = get_job(session, job_id)
    if job.state not in ("failed", "cancelled"):
        raise Conflict(f"Job {job_id} is {job.state}; only failed or cancelled jobs are retried.")
    if job.kind == "suggest":
        raise Conflict("Suggestions are not retried: the labeler asks for a new one.")
    state = "queued"
    if job.kind in STAGE_FILES:
        state = snapshot_gate(session, job.kind, job.params, data_dir)
    retry = Job(
        kind=job.kind,
        state=state,
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


def _check_training(session: Session, params: TrainParams) -> None:
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


def _check_sample(session: Session, params: SampleParams) -> SampleParams:
    """The parameters with their prompts fixed (by default the project's train-split prompts
    that hygiene lets into queues, oldest first): an admin on the web page need not know ids."""
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
    if not params.prompt_ids:
        usable = select(Prompt.id).where(
            Prompt.project_id == project.id, Prompt.split == "train", hygiene.usable()
        )
        chosen = list(session.scalars(usable.order_by(Prompt.id).limit(params.max_prompts)))
        if not chosen:
            raise InvalidInput(
                f"prompt_ids: project {project.name} has no train-split prompts to sample "
                "for; name the prompts."
            )
        return params.model_copy(update={"prompt_ids": chosen})
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
    return params


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
