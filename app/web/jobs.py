"""Admin pages for jobs, model versions and worker tokens. The job page's progress block polls
itself every second while the job is queued or running."""

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from app.deps import FormDep, SessionDep, WebAdmin, verify_csrf
from app.errors import InvalidInput, ServiceError, validated
from app.schemas.jobs import PARAMS, BaseModelIn, JobIn, WorkerIn
from app.services import evaluations, exports, jobs, projects, registry, suggestions, workers
from app.web import charts
from app.web.render import flash, render

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(verify_csrf)])
LIST_FIELDS = {"prompt_ids", "model_version_ids"}


def _data_dir(request: Request) -> Path:
    return request.app.state.settings.data_dir


def _jobs_page(
    request: Request,
    session: SessionDep,
    kind: str = "sft",
    values: dict | None = None,
    error: str | None = None,
    new_token: str | None = None,
    status_code: int = 200,
) -> Response:
    kind = kind if kind in PARAMS else "sft"
    fields = PARAMS[kind].model_fields
    context = {
        "jobs": jobs.list_jobs(session),
        "kind": kind,
        "kinds": list(PARAMS),
        "fields": fields,
        "values": values or _shown(jobs.default_params(kind)),
        "versions": registry.list_versions(session),
        "snapshots": exports.list_snapshots(session),
        "workers": workers.list_workers(session),
        "error": error,
        "new_token": new_token,
    }
    return render(request, "admin/jobs.html", context, status_code)


def _shown(defaults: dict) -> dict[str, str]:
    """Defaults as the form shows them."""
    shown = {}
    for name, value in defaults.items():
        if isinstance(value, bool):
            shown[name] = "true" if value else "false"
        elif value is not None:
            shown[name] = str(value)
    return shown


@router.get("/jobs")
def jobs_page(request: Request, session: SessionDep, _admin: WebAdmin, kind: str = "sft"):
    return _jobs_page(request, session, kind)


@router.post("/jobs")
def create_job(
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    admin: WebAdmin,
    form: FormDep,
) -> Response:
    settings, db, write = request.app.state.settings, request.app.state.db, jobs.write_snapshot
    kind = str(form.get("kind", ""))
    fields = PARAMS.get(kind, PARAMS["sft"]).model_fields
    values = {n: str(form[n]).strip() for n in fields if str(form.get(n, "")).strip()}
    params: dict[str, object] = dict(values)
    for name in LIST_FIELDS & set(values):
        params[name] = [p.strip() for p in values[name].replace(",", " ").split()]
    try:
        data = validated(JobIn, {"kind": kind, "params": params, "gpus": form.get("gpus") or 1})
        job = jobs.create_job(
            session, data, admin, settings, lambda s: background.add_task(write, db, settings, s)
        )
    except ServiceError as exc:
        return _jobs_page(request, session, kind, values, exc.message, status_code=exc.status_code)
    if job.state == "waiting":
        flash(request, f"Job {job.id} ({job.kind}) waits for snapshot {job.params['snapshot']}.")
    else:
        flash(request, f"Job {job.id} ({job.kind}) is queued.")
    return RedirectResponse(f"/admin/jobs/{job.id}", status_code=303)


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: int, session: SessionDep, _admin: WebAdmin) -> Response:
    job = jobs.get_job(session, job_id)
    plots = [charts.series(name, points) for name, points in jobs.metric_series(job).items()]
    evaluation = evaluations.job_evaluation(session, job) if job.kind == "evaluate" else None
    context = {"job": job, "eta": jobs.eta_seconds(job), "plots": plots, "evaluation": evaluation}
    return render(request, "admin/job.html", context, block="live")


@router.post("/jobs/{job_id}/cancel")
def cancel_job(request: Request, job_id: int, session: SessionDep, admin: WebAdmin) -> Response:
    job = jobs.cancel_job(session, job_id, admin)
    flash(request, "Cancelled." if job.state == "cancelled" else "Cancel sent to the worker.")
    return RedirectResponse(f"/admin/jobs/{job_id}", status_code=303)


@router.post("/jobs/{job_id}/retry")
def retry_job(request: Request, job_id: int, session: SessionDep, admin: WebAdmin) -> Response:
    job = jobs.retry_job(session, job_id, admin, _data_dir(request))
    flash(request, f"Job {job.id} queued again with the same parameters.")
    return RedirectResponse(f"/admin/jobs/{job.id}", status_code=303)


@router.post("/workers")
def create_worker(
    request: Request, session: SessionDep, admin: WebAdmin, form: FormDep
) -> Response:
    try:
        data = validated(WorkerIn, {"name": str(form.get("name", ""))})
    except ServiceError as exc:
        return _jobs_page(request, session, error=exc.message, status_code=exc.status_code)
    _worker, token = workers.create_worker(session, data.name, admin)
    return _jobs_page(request, session, new_token=token)


@router.post("/workers/{worker_id}/revoke")
def revoke_worker(
    request: Request, worker_id: int, session: SessionDep, admin: WebAdmin
) -> Response:
    worker = workers.revoke_worker(session, worker_id, admin)
    flash(request, f"Worker {worker.name}'s token is revoked.")
    return RedirectResponse("/admin/jobs", status_code=303)


# --- Model versions ---------------------------------------------------------------------------


def _models_page(
    request: Request, session: SessionDep, values: dict | None = None, error: str | None = None,
    status_code: int = 200, compare: list[int] | None = None,
) -> Response:  # fmt: skip
    versions = registry.list_versions(session)
    suggesting = [
        (p, suggestions.suggestion_model(session, p)) for p in projects.list_projects(session)
    ]
    context = {
        "versions": versions,
        "names": {v.id: v.name for v in versions},
        "lineages": {v.id: registry.lineage(session, v) for v in versions},
        "win_rates": evaluations.version_win_rates(session),
        "compare": compare or [],
        "side_by_side": None,
        "suggesting": suggesting,
        "values": values or {},
        "error": error,
    }
    if compare:
        try:
            context["side_by_side"] = registry.side_by_side(session, compare)
        except ServiceError as exc:
            context["error"], status_code = exc.message, exc.status_code
    return render(request, "admin/models.html", context, status_code)


@router.get("/models")
def models_page(
    request: Request,
    session: SessionDep,
    _admin: WebAdmin,
    compare: Annotated[list[int], Query()] = [],  # noqa: B006  (FastAPI copies defaults)
) -> Response:
    return _models_page(request, session, compare=compare)


@router.post("/models")
def register_base(
    request: Request, session: SessionDep, admin: WebAdmin, form: FormDep
) -> Response:
    values = {n: str(form.get(n, "")) for n in ("name", "path")}
    try:
        version = registry.register_base(session, validated(BaseModelIn, values), admin)
    except ServiceError as exc:
        return _models_page(request, session, values, exc.message, exc.status_code)
    flash(request, f"Registered {version.name} as a base model.")
    return RedirectResponse("/admin/models", status_code=303)


@router.post("/projects/{project_id}/suggestion-model")
def choose_suggestion_model(
    request: Request, project_id: int, session: SessionDep, _admin: WebAdmin, form: FormDep
) -> Response:
    chosen = str(form.get("model_version_id", "")).strip()
    try:
        if chosen and not chosen.isdigit():
            raise InvalidInput("Choose a model version from the list.")
        project = suggestions.choose_model(session, project_id, int(chosen) if chosen else None)
    except ServiceError as exc:
        return _models_page(request, session, error=exc.message, status_code=exc.status_code)
    flash(request, f"Suggestions in {project.name} now come from the chosen model.")
    return RedirectResponse("/admin/models", status_code=303)
