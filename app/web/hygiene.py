"""Admin page for prompt hygiene: prompts held for personal data, and users over the cap."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from app.deps import FormDep, SessionDep, WebAdmin, verify_csrf
from app.errors import ServiceError, validated
from app.schemas.quality import ReviewIn
from app.services import hygiene, projects
from app.services.pii import KIND_LABELS
from app.web.render import flash, render

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(verify_csrf)])


def _page(
    request: Request,
    session: SessionDep,
    project_id: int,
    error: str | None = None,
    status: int = 200,
) -> Response:
    project = projects.get_project(session, project_id)
    context = {
        "project": project,
        "held": hygiene.held_prompts(session, project),
        "over_cap": hygiene.users_over_cap(session, project),
        "kind_labels": KIND_LABELS,
        "error": error,
    }
    return render(request, "admin/hygiene.html", context, status)


@router.get("/projects/{project_id}/hygiene")
def hygiene_page(
    request: Request, project_id: int, session: SessionDep, _admin: WebAdmin
) -> Response:
    return _page(request, session, project_id)


@router.post("/projects/{project_id}/prompts/{prompt_id}/review")
def review_prompt(
    request: Request,
    project_id: int,
    prompt_id: int,
    session: SessionDep,
    admin: WebAdmin,
    form: FormDep,
) -> Response:
    project = projects.get_project(session, project_id)
    try:
        data = validated(ReviewIn, {"decision": str(form.get("decision", ""))})
        prompt = hygiene.review_prompt(session, project, prompt_id, data.decision, admin)
    except ServiceError as exc:
        return _page(request, session, project_id, exc.message, exc.status_code)
    flash(request, f"Prompt {prompt.id} is now {prompt.review_state}.")
    return RedirectResponse(f"/admin/projects/{project_id}/hygiene", status_code=303)
