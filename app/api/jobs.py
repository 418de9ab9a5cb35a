"""/api/v1 for jobs: admins create, watch, cancel and retry jobs, manage worker tokens and model
versions; workers (worker tokens only) claim jobs, heartbeat and finish them."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.api.routes import ERRORS
from app.deps import ApiAdmin, SessionDep, WorkerToken
from app.models import Job
from app.schemas.jobs import (
    BaseModelIn,
    ClaimIn,
    EvaluationOut,
    FinishIn,
    HeartbeatIn,
    HeartbeatOut,
    JobDetailOut,
    JobIn,
    JobOut,
    JobSpec,
    ModelVersionOut,
    PairWinRateOut,
    VersionComparisonOut,
    WorkerCreated,
    WorkerIn,
    WorkerOut,
)
from app.services import evaluations, jobs, leases, registry, workers

router = APIRouter(prefix="/api/v1", responses=ERRORS)


def _data_dir(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.settings.data_dir


# --- Jobs (admins) ---------------------------------------------------------------------------


@router.get("/jobs", tags=["jobs"], response_model=list[JobOut])
def list_jobs(session: SessionDep, _admin: ApiAdmin) -> list[JobOut]:
    return [JobOut.model_validate(j) for j in jobs.list_jobs(session)]


@router.post("/jobs", tags=["jobs"], response_model=JobOut, status_code=201)
def create_job(request: Request, data: JobIn, session: SessionDep, admin: ApiAdmin) -> JobOut:
    return JobOut.model_validate(jobs.create_job(session, data, admin, _data_dir(request)))


@router.get("/jobs/{job_id}", tags=["jobs"], response_model=JobDetailOut)
def get_job(job_id: int, session: SessionDep, _admin: ApiAdmin) -> JobDetailOut:
    return JobDetailOut.model_validate(jobs.get_job(session, job_id))


@router.post("/jobs/{job_id}/cancel", tags=["jobs"], response_model=JobOut)
def cancel_job(job_id: int, session: SessionDep, admin: ApiAdmin) -> JobOut:
    return JobOut.model_validate(jobs.cancel_job(session, job_id, admin))


@router.post("/jobs/{job_id}/retry", tags=["jobs"], response_model=JobOut, status_code=201)
def retry_job(job_id: int, session: SessionDep, admin: ApiAdmin) -> JobOut:
    return JobOut.model_validate(jobs.retry_job(session, job_id, admin))


@router.get(
    "/jobs/{job_id}/evaluation",
    tags=["jobs"],
    response_model=EvaluationOut,
    summary="An evaluate job's comparisons so far: A's win rate over B with a 95 % interval",
)
def job_evaluation(job_id: int, session: SessionDep, _admin: ApiAdmin) -> EvaluationOut:
    evaluation = evaluations.job_evaluation(session, jobs.get_job(session, job_id))
    params = evaluation.job.params
    return EvaluationOut.model_validate(
        {
            "job_id": job_id,
            "state": evaluation.job.state,
            "model_version_a_id": params["model_version_a_id"],
            "model_version_b_id": params["model_version_b_id"],
            "labeler_group": params["labeler_group"],
            "pairs": evaluation.pairs,
            "wanted": evaluation.wanted,
            "win_rate": evaluation.result,
        }
    )


# --- Model versions and worker tokens (admins) -------------------------------------------------


@router.get("/model-versions", tags=["models"], response_model=list[ModelVersionOut])
def list_versions(session: SessionDep, _admin: ApiAdmin) -> list[ModelVersionOut]:
    return [ModelVersionOut.model_validate(v) for v in registry.list_versions(session)]


@router.get(
    "/model-versions/compare",
    tags=["models"],
    response_model=VersionComparisonOut,
    summary="Two or more versions side by side, with the win rates between them",
)
def compare_versions(
    session: SessionDep,
    _admin: ApiAdmin,
    ids: Annotated[list[int], Query()] = [],  # noqa: B006  (FastAPI copies defaults)
) -> VersionComparisonOut:
    compared = registry.side_by_side(session, ids)
    return VersionComparisonOut(
        versions=[ModelVersionOut.model_validate(v) for v in compared.versions],
        win_rates=[
            PairWinRateOut.model_validate(
                {"model_version_a_id": a, "model_version_b_id": b, "win_rate": rate}
            )
            for (a, b), rate in compared.win_rates.items()
            if a < b
        ],
    )


@router.post("/model-versions", tags=["models"], response_model=ModelVersionOut, status_code=201)
def register_base(data: BaseModelIn, session: SessionDep, admin: ApiAdmin) -> ModelVersionOut:
    return ModelVersionOut.model_validate(registry.register_base(session, data, admin))


@router.get("/workers", tags=["workers"], response_model=list[WorkerOut])
def list_workers(session: SessionDep, _admin: ApiAdmin) -> list[WorkerOut]:
    return [WorkerOut.model_validate(w) for w in workers.list_workers(session)]


@router.post("/workers", tags=["workers"], response_model=WorkerCreated, status_code=201)
def create_worker(data: WorkerIn, session: SessionDep, admin: ApiAdmin) -> WorkerCreated:
    worker, token = workers.create_worker(session, data.name, admin)
    return WorkerCreated(**WorkerOut.model_validate(worker).model_dump(), token=token)


@router.delete("/workers/{worker_id}", tags=["workers"], response_model=WorkerOut)
def revoke_worker(worker_id: int, session: SessionDep, admin: ApiAdmin) -> WorkerOut:
    return WorkerOut.model_validate(workers.revoke_worker(session, worker_id, admin))


# --- Worker endpoints (worker tokens) ------------------------------------------------------------


@router.post(
    "/worker/claim",
    tags=["worker"],
    response_model=JobSpec,
    responses={204: {"description": "No job waits for this worker"}},
    summary="Lease the oldest queued job of the wanted kinds",
)
def claim(
    request: Request, data: ClaimIn, session: SessionDep, worker: WorkerToken
) -> JobSpec | Response:
    spec = leases.claim_job(session, worker, data, _data_dir(request))
    return spec if spec is not None else Response(status_code=204)


@router.post(
    "/worker/jobs/{job_id}/heartbeat",
    tags=["worker"],
    response_model=HeartbeatOut,
    summary="Extend the lease; send progress, metrics and log lines; learn of cancel requests",
)
def heartbeat(
    job_id: int, data: HeartbeatIn, session: SessionDep, worker: WorkerToken
) -> HeartbeatOut:
    job = leases.heartbeat(session, job_id, worker, data)
    return _heartbeat_out(job)


@router.post("/worker/jobs/{job_id}/finish", tags=["worker"], response_model=JobOut)
def finish(
    request: Request, job_id: int, data: FinishIn, session: SessionDep, worker: WorkerToken
) -> JobOut:
    job = leases.finish_job(session, job_id, worker, data, _data_dir(request))
    return JobOut.model_validate(job)


def _heartbeat_out(job: Job) -> HeartbeatOut:
    assert job.lease_expires_at is not None
    return HeartbeatOut(
        lease_expires_at=job.lease_expires_at, cancel_requested=job.cancel_requested
    )
