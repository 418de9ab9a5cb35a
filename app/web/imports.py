"""The admin's import page of a project: upload a JSONL file of completions, OpenAssistant
trees or chosen/rejected pairs. All or nothing per file and idempotent, like the CLI; a bad
file is answered with its bad lines by number and changes nothing."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from app.deps import FormDep, SessionDep, WebAdmin, verify_csrf
from app.errors import InvalidInput, ServiceError
from app.models import Project
from app.services import import_files, projects
from app.web.render import render

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(verify_csrf)])


def _page(
    request: Request,
    project: Project,
    kind: str = "oasst",
    report: import_files.FileImport | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "project": project,
        "kinds": import_files.KINDS,
        "kind": kind,
        "report": report,
        "error": error,
    }
    return render(request, "admin/import.html", context, status_code)


@router.get("/projects/{project_id}/import")
def import_page(
    request: Request, project_id: int, session: SessionDep, _admin: WebAdmin
) -> Response:
    return _page(request, projects.get_project(session, project_id))


@router.post("/projects/{project_id}/import")
def upload(
    request: Request, project_id: int, session: SessionDep, _admin: WebAdmin, form: FormDep
) -> Response:
    project = projects.get_project(session, project_id)
    kind = str(form.get("kind", ""))
    file = form.get("file")
    data = file.file.read() if isinstance(file, UploadFile) else b""
    try:
        if not data:
            raise InvalidInput("Choose a file to import. Nothing was imported.")
        report = import_files.import_file(session, project, kind, data)
    except ServiceError as exc:
        session.rollback()
        return _page(request, project, kind, error=exc.message, status_code=exc.status_code)
    return _page(request, project, kind, report=report)
