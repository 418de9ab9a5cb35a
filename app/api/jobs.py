"""/api/v1 for jobs: admins create, watch, cancel and retry jobs, manage worker tokens and model
versions; workers (worker tokens only) claim jobs, heartbeat and finish them, and, when they do
not share the app's disk, download the job's snapshot and models and upload the trained model
(app/services/artifacts.py). A worker token touches only the jobs it holds."""

from typing import Annotated

from fastapi import BackgroundTasks, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from starlette.requests import ClientDisconnect

from app.api.routing import api_router
from app.deps import ApiAdmin, SessionDep, StreamingWorkerToken, WorkerToken
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
    UploadOut,
    VersionComparisonOut,
    WorkerCreated,
    WorkerIn,
    WorkerOut,
)
from app.services import artifacts, evaluations, jobs, leases, registry, workers

router = api_router()


def _data_dir(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.settings.data_dir


# --- Jobs (admins) ---------------------------------------------------------------------------


@router.get("/jobs", tags=["jobs"], response_model=list[JobOut])
def list_jobs(session: SessionDep, _admin: ApiAdmin) -> list[JobOut]:
    return [JobOut.model_validate(j) for j in jobs.list_jobs(session)]


@router.post(
    "/jobs",
    tags=["jobs"],
    response_model=JobOut,
    status_code=201,
    summary='Queue a job; a training job with the snapshot "new" waits for a new snapshot',
)
def create_job(
    request: Request,
    background: BackgroundTasks,
    data: JobIn,
    session: SessionDep,
    admin: ApiAdmin,
) -> JobOut:
    settings, db = request.app.state.settings, request.app.state.db

    def start(snapshot_id: str) -> None:
        background.add_task(jobs.write_snapshot, db, settings, snapshot_id)

    return JobOut.model_validate(jobs.create_job(session, data, admin, settings, start))


@router.get("/jobs/{job_id}", tags=["jobs"], response_model=JobDetailOut)
def get_job(job_id: int, session: SessionDep, _admin: ApiAdmin) -> JobDetailOut:
    return JobDetailOut.model_validate(jobs.get_job(session, job_id))


@router.post("/jobs/{job_id}/cancel", tags=["jobs"], response_model=JobOut)
def cancel_job(job_id: int, session: SessionDep, admin: ApiAdmin) -> JobOut:
    return JobOut.model_validate(jobs.cancel_job(session, job_id, admin))


@router.post("/jobs/{job_id}/retry", tags=["jobs"], response_model=JobOut, status_code=201)
def retry_job(request: Request, job_id: int, session: SessionDep, admin: ApiAdmin) -> JobOut:
    return JobOut.model_validate(jobs.retry_job(session, job_id, admin, _data_dir(request)))


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


ARCHIVE = {200: {"content": {"application/x-tar": {}}, "description": "a tar archive"}}


@router.get(
    "/worker/jobs/{job_id}/snapshot",
    tags=["worker"],
    response_class=FileResponse,
    responses=ARCHIVE,
    summary="The held job's snapshot directory as a tar archive (sha256 in X-Content-SHA256)",
)
def download_snapshot(
    request: Request, job_id: int, lease: str, session: SessionDep, worker: WorkerToken
) -> FileResponse:
    job = leases.held_job(session, job_id, worker, lease, lock=False)
    path, sha = artifacts.snapshot_archive(_data_dir(request), job)
    return _archive(path, sha)


@router.get(
    "/worker/jobs/{job_id}/models/{version_id}",
    tags=["worker"],
    response_class=FileResponse,
    responses=ARCHIVE,
    summary="A model version the held job reads, as a tar archive (sha256 in X-Content-SHA256)",
)
def download_model(
    request: Request,
    job_id: int,
    version_id: int,
    lease: str,
    session: SessionDep,
    worker: WorkerToken,
) -> FileResponse:
    job = leases.held_job(session, job_id, worker, lease, lock=False)
    path, sha = artifacts.model_archive(session, _data_dir(request), job, version_id)
    return _archive(path, sha)


def _archive(path, sha: str) -> FileResponse:  # type: ignore[no-untyped-def]
    headers = {"X-Content-SHA256": sha}
    return FileResponse(path, media_type="application/x-tar", headers=headers)


@router.put(
    "/worker/jobs/{job_id}/model",
    tags=["worker"],
    response_model=UploadOut,
    openapi_extra={"requestBody": {"content": {"application/x-tar": {}}, "required": True}},
    summary="Upload the trained model directory (tar); finish the job with the artifact_path",
)
async def upload_model(
    request: Request,
    job_id: int,
    lease: str,
    worker: StreamingWorkerToken,
    x_content_sha256: str = Header(description="sha256 of the archive, hex"),
) -> UploadOut:
    """Streams the body to disk; the app keeps the model only when every byte arrived and the
    checksum matches. The session is not held while the body streams in."""
    db, data_dir = request.app.state.db, _data_dir(request)

    def check_lease() -> None:
        with db.session(write=False) as session:
            leases.held_job(session, job_id, worker, lease, lock=False)

    await run_in_threadpool(check_lease)
    declared = request.headers.get("content-length")
    upload = await run_in_threadpool(
        artifacts.Upload, data_dir, job_id, int(declared) if declared else None, x_content_sha256
    )
    try:
        async for chunk in request.stream():
            await run_in_threadpool(upload.write, chunk)
    except ClientDisconnect:
        raise upload.cut_off() from None
    except BaseException:
        upload.abort()
        raise
    return await run_in_threadpool(upload.finish)


def _heartbeat_out(job: Job) -> HeartbeatOut:
    assert job.lease_expires_at is not None
    return HeartbeatOut(
        lease_expires_at=job.lease_expires_at, cancel_requested=job.cancel_requested
    )
