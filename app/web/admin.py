"""Admin pages: labelers and their tokens, projects with guidelines and settings."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from app.deps import FormDep, SessionDep, WebAdmin, verify_csrf
from app.errors import ServiceError, validated
from app.schemas.admin import GroupIn, ProjectSettingsIn, TokenIn, UserIn
from app.services import groups, projects, users
from app.web.render import flash, render

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(verify_csrf)])


def _fields(form: FormDep, *names: str) -> dict[str, str]:
    return {name: str(form.get(name, "")) for name in names if name in form}


@router.get("")
def dashboard(request: Request, session: SessionDep, _admin: WebAdmin) -> Response:
    context = {"projects": projects.list_projects(session), "users": users.list_users(session)}
    return render(request, "admin/dashboard.html", context)


# --- Users ------------------------------------------------------------------------------------


def _users_page(
    request: Request,
    session: SessionDep,
    error: str | None = None,
    values: dict | None = None,
    new_token: str | None = None,
    status_code: int = 200,
) -> Response:
    all_users = users.list_users(session)
    tokens = {u.id: users.list_tokens(session, u.id) for u in all_users}
    context = {
        "users": all_users,
        "tokens": tokens,
        "error": error,
        "values": values or {},
        "new_token": new_token,
    }
    return render(request, "admin/users.html", context, status_code)


@router.get("/users")
def users_page(request: Request, session: SessionDep, _admin: WebAdmin) -> Response:
    return _users_page(request, session)


@router.post("/users")
def create_user(request: Request, session: SessionDep, admin: WebAdmin, form: FormDep) -> Response:
    values = _fields(form, "username", "password", "role")
    try:
        user = users.create_user(session, validated(UserIn, values), admin)
    except ServiceError as exc:
        values.pop("password", None)
        return _users_page(request, session, exc.message, values, status_code=exc.status_code)
    flash(request, f"Created {user.role} {user.username}.")
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/{user_id}/active")
def set_active(
    request: Request, user_id: int, session: SessionDep, admin: WebAdmin, form: FormDep
) -> Response:
    active = form.get("active") == "true"
    user = users.set_active(session, user_id, active, admin)
    flash(request, f"{user.username} is now {'active' if active else 'deactivated'}.")
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/{user_id}/group")
def set_group(
    request: Request, user_id: int, session: SessionDep, admin: WebAdmin, form: FormDep
) -> Response:
    try:
        data = validated(GroupIn, _fields(form, "labeler_group"))
        user = groups.set_group(session, user_id, data.labeler_group, admin)
    except ServiceError as exc:
        return _users_page(request, session, exc.message, status_code=exc.status_code)
    flash(request, f"{user.username} is now in the {groups.GROUP_NAMES[user.labeler_group]} group.")
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/{user_id}/tokens")
def create_token(
    request: Request, user_id: int, session: SessionDep, admin: WebAdmin, form: FormDep
) -> Response:
    try:
        data = validated(TokenIn, _fields(form, "name"))
        user = users.get_user(session, user_id)
        _token, plaintext = users.create_token(session, user, data.name, admin)
    except ServiceError as exc:
        return _users_page(request, session, exc.message, status_code=exc.status_code)
    return _users_page(request, session, new_token=plaintext)


@router.post("/users/{user_id}/tokens/{token_id}/revoke")
def revoke_token(
    request: Request, user_id: int, token_id: int, session: SessionDep, admin: WebAdmin
) -> Response:
    users.revoke_token(session, token_id, user_id, admin)
    flash(request, "Token revoked.")
    return RedirectResponse("/admin/users", status_code=303)


# --- Projects ---------------------------------------------------------------------------------

PROJECT_FIELDS = (
    "name",
    "guidelines",
    "k_min",
    "k_max",
    "lease_seconds",
    "annotations_per_item",
    "overlap_percent",
    "overlap_annotations",
    "max_prompts_per_user",
    "dedup_min_prefix",
    "dedup_prefix_percent",
    "gold_percent",
    "min_task_ms",
    "min_task_median_percent",
    "too_fast_review_count",
    "split_train",
    "split_validation",
    "split_test",
)


@router.get("/projects/new")
def new_project(request: Request, _admin: WebAdmin) -> Response:
    values = ProjectSettingsIn.model_construct(name="").model_dump()
    return render(request, "admin/project.html", {"project": None, "values": values})


@router.post("/projects")
def create_project(
    request: Request, session: SessionDep, admin: WebAdmin, form: FormDep
) -> Response:
    values = _fields(form, *PROJECT_FIELDS)
    try:
        project = projects.create_project(session, validated(ProjectSettingsIn, values), admin)
    except ServiceError as exc:
        context = {"project": None, "values": values, "error": exc.message}
        return render(request, "admin/project.html", context, exc.status_code)
    flash(request, f"Created project {project.name}.")
    return RedirectResponse(f"/admin/projects/{project.id}", status_code=303)


@router.get("/projects/{project_id}")
def project_page(
    request: Request, project_id: int, session: SessionDep, _admin: WebAdmin
) -> Response:
    project = projects.get_project(session, project_id)
    values = {field: getattr(project, field) for field in PROJECT_FIELDS}
    return render(request, "admin/project.html", {"project": project, "values": values})


@router.post("/projects/{project_id}")
def update_project(
    request: Request, project_id: int, session: SessionDep, admin: WebAdmin, form: FormDep
) -> Response:
    project = projects.get_project(session, project_id)
    values = _fields(form, *PROJECT_FIELDS)
    try:
        projects.update_project(session, project_id, validated(ProjectSettingsIn, values), admin)
    except ServiceError as exc:
        context = {"project": project, "values": values, "error": exc.message}
        return render(request, "admin/project.html", context, exc.status_code)
    flash(request, "Settings saved.")
    return RedirectResponse(f"/admin/projects/{project_id}", status_code=303)
