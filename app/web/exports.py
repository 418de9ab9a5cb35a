"""Admin pages for export snapshots: the list, the form that starts one, a page that follows
its progress (a fragment that re-requests itself every second while the export runs) and the
download of the finished snapshot as one archive."""

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from app.deps import FormDep, SessionDep, WebAdmin, verify_csrf
from app.errors import ServiceError, validated
from app.schemas.snapshot import MIN_AGREEMENT_COMPARISONS, ExportRequest
from app.services import exports, projects
from app.web.render import flash, render

router = APIRouter(
    prefix="/admin/exports", include_in_schema=False, dependencies=[Depends(verify_csrf)]
)


def _page(
    request: Request,
    session: SessionDep,
    values: dict[str, Any] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "snapshots": exports.list_snapshots(session),
        "projects": projects.list_projects(session),
        "values": values or ExportRequest().model_dump(mode="json"),
        "error": error,
        "min_agreement_comparisons": MIN_AGREEMENT_COMPARISONS,
    }
    return render(request, "admin/exports.html", context, status_code)


@router.get("")
def exports_page(request: Request, session: SessionDep, _admin: WebAdmin) -> Response:
    return _page(request, session)


def _request_values(form: FormDep) -> dict[str, Any]:
    """The form as an ExportRequest's fields; empty fields take the defaults."""
    values: dict[str, Any] = {
        name: str(form[name]).strip()
        for name in (
            "project_id",
            "since",
            "until",
            "min_labeler_agreement",
            "max_prompts_per_author",
            "format",
            "pairs",
        )
        if str(form.get(name, "")).strip()
    }
    if "max_prompts_per_author" not in values:
        values["max_prompts_per_author"] = None
    values["labeler_groups"] = [str(v) for v in form.getlist("labeler_groups")]
    excluded = str(form.get("exclude_labelers", ""))
    values["exclude_labelers"] = [n for n in excluded.replace(",", " ").split() if n]
    for flag in ("include_too_fast", "include_gold"):
        values[flag] = flag in form  # an unticked checkbox is not sent
    return values


@router.post("")
def create_export(
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    admin: WebAdmin,
    form: FormDep,
) -> Response:
    values = _request_values(form)
    snapshot_id = str(form.get("snapshot_id", "")).strip() or None
    settings = request.app.state.settings
    try:
        data = validated(ExportRequest, values)
        snapshot = exports.request_snapshot(session, settings, data, admin, snapshot_id)
    except ServiceError as exc:
        values["snapshot_id"] = snapshot_id or ""
        return _page(request, session, values, exc.message, exc.status_code)
    background.add_task(exports.run_snapshot, request.app.state.db, settings, snapshot.id)
    flash(request, f"Snapshot {snapshot.id} is being written.")
    return RedirectResponse(f"/admin/exports/{snapshot.id}", status_code=303)


@router.get("/{snapshot_id}")
def snapshot_page(
    request: Request, snapshot_id: str, session: SessionDep, _admin: WebAdmin
) -> Response:
    snapshot = exports.get_snapshot(session, snapshot_id)
    settings = request.app.state.settings
    context = {
        "snapshot": snapshot,
        "directory": exports.snapshot_dir(settings, snapshot.id),
        "card": exports.read_text(settings, snapshot, "README.md"),
    }
    return render(request, "admin/export.html", context, block="progress")


@router.get("/{snapshot_id}/archive")
def download(
    request: Request, snapshot_id: str, session: SessionDep, _admin: WebAdmin
) -> FileResponse:
    snapshot = exports.get_snapshot(session, snapshot_id)
    path = exports.archive(request.app.state.settings, snapshot)
    return FileResponse(path, media_type="application/gzip", filename=path.name)
