"""The model registry: every trained or registered model is a model version with its lineage."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.models import Job, ModelVersion, User
from app.schemas.jobs import BaseModelIn
from app.services import audit
from app.services.evaluations import WinRate, win_rate_matrix
from app.services.jobs import resolve_snapshot

TRAINED_KINDS = {"sft": "policy", "rm": "reward", "ppo": "policy"}


def register_base(session: Session, data: BaseModelIn, user: User | None) -> ModelVersion:
    """Registers an existing local Hugging Face model directory as a base model."""
    path = Path(data.path).expanduser().resolve()
    _check_model_dir(path, "path")
    version = ModelVersion(
        name=data.name, kind="base", parent_ids=[], artifact_path=str(path), config={}, metrics={}
    )
    version.created_by_id = user.id if user else None
    session.add(version)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"The model name {data.name!r} is taken.") from None
    after = {"name": version.name, "artifact_path": version.artifact_path}
    audit.record(session, user, "model.registered", version, after=after)
    session.commit()
    return version


def add_trained_version(
    session: Session, job: Job, result: dict[str, Any], data_dir: Path
) -> ModelVersion:
    """The model version a finished training job produced (added, not committed: finishing the
    job commits both)."""
    artifact = result.get("artifact_path")
    if not isinstance(artifact, str) or not artifact:
        raise InvalidInput("result.artifact_path: the trained model's directory is required.")
    run_dir = (data_dir / "jobs" / str(job.id)).resolve()
    if not Path(artifact).resolve().is_relative_to(run_dir):
        raise InvalidInput(
            f"result.artifact_path: {artifact} is not in the job's run directory {run_dir} "
            "(a worker without the app's disk uploads the model first). Nothing was registered."
        )
    _check_model_dir(Path(artifact), "result.artifact_path")
    metrics = result.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise InvalidInput("result.metrics: expected an object of final metrics.")
    params = job.params
    parents = [params["model_version_id"]]
    if job.kind == "ppo":
        parents.append(params["reward_model_version_id"])
    version = ModelVersion(
        name=f"{job.kind}-job{job.id}",
        kind=TRAINED_KINDS[job.kind],
        parent_ids=parents,
        snapshot=str(resolve_snapshot(params["snapshot"], data_dir)),
        config=params,
        metrics=metrics,
        artifact_path=str(Path(artifact).resolve()),
        job_id=job.id,
        created_by_id=job.created_by_id,
    )
    session.add(version)
    return version


def list_versions(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc())))


def get_version(session: Session, version_id: int) -> ModelVersion:
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise NotFound(f"There is no model version {version_id}.")
    return version


def lineage(session: Session, version: ModelVersion) -> list[list[ModelVersion]]:
    """The version's ancestors by generation, oldest first, ending with the version itself."""
    generations = [[version]]
    seen = {version.id}
    while True:
        ids = [p for v in generations[0] for p in v.parent_ids if p not in seen]
        if not ids:
            return generations
        parents = list(session.scalars(select(ModelVersion).where(ModelVersion.id.in_(ids))))
        seen.update(p.id for p in parents)
        generations.insert(0, sorted(parents, key=lambda p: p.id))


@dataclass(frozen=True)
class SideBySide:
    """Versions next to each other: lineage, the union of their config and metric names, and
    the win rate of each (row) over each other (column) where labelers compared them."""

    versions: list[ModelVersion]
    lineages: dict[int, list[list[ModelVersion]]]
    config_keys: list[str]
    metric_keys: list[str]
    win_rates: dict[tuple[int, int], WinRate]


def side_by_side(session: Session, version_ids: list[int]) -> SideBySide:
    ids = list(dict.fromkeys(version_ids))
    if len(ids) < 2:
        raise InvalidInput("Choose at least two model versions to compare.")
    found = {v.id: v for v in session.scalars(select(ModelVersion).where(ModelVersion.id.in_(ids)))}
    if missing := [i for i in ids if i not in found]:
        raise InvalidInput(f"There is no model version {', '.join(map(str, missing))}.")
    versions = [found[i] for i in ids]
    return SideBySide(
        versions=versions,
        lineages={v.id: lineage(session, v) for v in versions},
        config_keys=sorted({k for v in versions for k in v.config}),
        metric_keys=sorted({k for v in versions for k in v.metrics}),
        win_rates=win_rate_matrix(session, ids),
    )


def _check_model_dir(path: Path, field: str) -> None:
    if not (path / "config.json").is_file():
        raise InvalidInput(
            f"{field}: {path} is not a complete model directory (no config.json) on the "
            "storage the app shares with its workers. Nothing was registered."
        )
