"""The labeler's pages: home, writing prompts, and working on tasks."""

import secrets
from datetime import datetime

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeSerializer

from app.deps import FormDep, SessionDep, WebLabeler, verify_csrf
from app.errors import InvalidInput, NeedsConfirmation, ServiceError, validated
from app.models import Task, User
from app.models.base import utcnow
from app.schemas.labeling import (
    ComparisonIn,
    DemonstrationIn,
    PromptIn,
    RankingIn,
    SkipIn,
    SuggestIn,
)
from app.services import activity, projects, prompts, queue, submissions, suggestions
from app.web import forms
from app.web.render import flash, render

router = APIRouter(prefix="/labeler", include_in_schema=False, dependencies=[Depends(verify_csrf)])

KIND_NAMES = {"ranking": "ranking", "demonstration": "demonstration", "comparison": "comparison"}


@router.get("")
def home(request: Request, session: SessionDep, labeler: WebLabeler) -> Response:
    waiting = [
        (project, queue.waiting_counts(session, project.id, labeler.id))
        for project in projects.list_projects(session)
    ]
    today = activity.done_today(session, labeler.id)
    return render(request, "labeler/home.html", {"waiting": waiting, "today": today})


# --- Writing prompts ----------------------------------------------------------------------


def _form_signer(request: Request) -> URLSafeSerializer:
    return URLSafeSerializer(request.app.state.settings.secret_key, salt="prompt-form")


def _form_token(request: Request, submission_key: str, started_at: datetime) -> str:
    """The submission key and the time the form was first served, signed, so time on task is
    measured by the server and survives re-showing the form after an error."""
    return _form_signer(request).dumps([submission_key, started_at.isoformat()])


def _form_started_at(request: Request, token: str, values: dict) -> datetime | None:
    try:
        key, started_at = _form_signer(request).loads(token)
    except (BadSignature, ValueError, TypeError):
        return None
    if key != values.get("submission_key"):
        return None
    return datetime.fromisoformat(started_at)


def _prompt_page(
    request: Request,
    project_id: int,
    session: SessionDep,
    values: dict | None = None,
    error: str | None = None,
    status_code: int = 200,
    started_at: datetime | None = None,
    warnings: list[str] | None = None,
) -> Response:
    project = projects.get_project(session, project_id)
    if values is None:
        values = {"kind": "plain", "language": "en", "few_shot_pairs": []}
    if not values.get("submission_key"):
        values["submission_key"] = secrets.token_urlsafe(16)
    token = _form_token(request, values["submission_key"], started_at or utcnow())
    context = {
        "project": project,
        "values": values,
        "form_token": token,
        "error": error,
        "warnings": warnings or [],
    }
    return render(request, "labeler/prompt_form.html", context, status_code)


@router.get("/projects/{project_id}/prompts/new")
def new_prompt(
    request: Request, project_id: int, session: SessionDep, _labeler: WebLabeler
) -> Response:
    return _prompt_page(request, project_id, session)


@router.post("/projects/{project_id}/prompts")
def create_prompt(
    request: Request, project_id: int, session: SessionDep, labeler: WebLabeler, form: FormDep
) -> Response:
    values = forms.prompt_fields(form)
    started_at = _form_started_at(request, str(form.get("form_token", "")), values)
    try:
        project = projects.get_project(session, project_id)
        data = validated(PromptIn, values)
        _prompt, created = prompts.create_prompt(session, project, labeler, data, started_at)
    except NeedsConfirmation as exc:
        return _prompt_page(
            request, project_id, session, values, None, 200, started_at, exc.warnings
        )
    except ServiceError as exc:
        return _prompt_page(
            request, project_id, session, values, exc.message, exc.status_code, started_at
        )
    flash(request, "Prompt saved." if created else "This prompt was saved already.")
    return RedirectResponse(f"/labeler/projects/{project_id}/prompts/new", status_code=303)


# --- Tasks ----------------------------------------------------------------------------------


@router.post("/projects/{project_id}/next")
def next_task(
    request: Request,
    project_id: int,
    session: SessionDep,
    labeler: WebLabeler,
    kind: str = Form(),
) -> Response:
    project = projects.get_project(session, project_id)
    return _go_to_next(request, session, project_id, labeler, kind, project=project)


def _go_to_next(
    request: Request, session: SessionDep, project_id: int, labeler: User, kind: str, project=None
) -> Response:
    project = project or projects.get_project(session, project_id)
    task = queue.next_task(session, project, labeler, kind)
    if task is None:
        flash(request, f"No {KIND_NAMES.get(kind, kind)} tasks are waiting for you right now.")
        return RedirectResponse("/labeler", status_code=303)
    return RedirectResponse(f"/labeler/tasks/{task.id}", status_code=303)


def _task_page(
    request: Request,
    session: SessionDep,
    task: Task,
    values: dict | None = None,
    error: str | None = None,
    status_code: int = 200,
    extra: dict | None = None,
) -> Response:
    """The task's page; the screening test passes `extra` to send the forms to its routes."""
    view = queue.task_view(session, task)
    project = projects.get_project(session, task.item.project_id)
    template = f"labeler/{task.item.kind}.html"
    context = {"view": view, "project": project, "values": values or {}, "error": error}
    return render(request, template, {**context, **(extra or {})}, status_code)


@router.get("/tasks/{task_id}")
def show_task(request: Request, task_id: int, session: SessionDep, labeler: WebLabeler) -> Response:
    return _task_page(request, session, queue.own_task(session, task_id, labeler))


@router.post("/tasks/{task_id}/ranking")
def submit_ranking(
    request: Request, task_id: int, session: SessionDep, labeler: WebLabeler, form: FormDep
) -> Response:
    task = queue.own_task(session, task_id, labeler)
    values = forms.ranking_fields(form, task.completion_order or [])
    try:
        if missing := forms.missing_ranks(values):
            raise InvalidInput(f"Give every answer a rank: {missing} of them have none yet.")
        submissions.submit_ranking(session, task_id, labeler, validated(RankingIn, values))
    except ServiceError as exc:
        return _task_page(request, session, task, values, exc.message, exc.status_code)
    flash(request, "Ranking saved.")
    return _go_to_next(request, session, task.item.project_id, labeler, "ranking")


@router.post("/tasks/{task_id}/demonstration")
def submit_demonstration(
    request: Request, task_id: int, session: SessionDep, labeler: WebLabeler, form: FormDep
) -> Response:
    task = queue.own_task(session, task_id, labeler)
    values = forms.demonstration_fields(form)
    try:
        data = validated(DemonstrationIn, values)
        submissions.submit_demonstration(session, task_id, labeler, data)
    except ServiceError as exc:
        return _task_page(request, session, task, values, exc.message, exc.status_code)
    flash(request, "Demonstration saved.")
    return _go_to_next(request, session, task.item.project_id, labeler, "demonstration")


@router.post("/tasks/{task_id}/comparison")
def submit_comparison(
    request: Request, task_id: int, session: SessionDep, labeler: WebLabeler, form: FormDep
) -> Response:
    task = queue.own_task(session, task_id, labeler)
    values = {"choice": str(form.get("choice", ""))}
    try:
        if not values["choice"]:
            raise InvalidInput("Choose answer A, answer B or a tie (keys 1, 2, 0).")
        submissions.submit_comparison(session, task_id, labeler, validated(ComparisonIn, values))
    except ServiceError as exc:
        return _task_page(request, session, task, values, exc.message, exc.status_code)
    flash(request, "Choice saved.")
    return _go_to_next(request, session, task.item.project_id, labeler, "comparison")


@router.post("/tasks/{task_id}/suggestions")
def request_suggestion(
    request: Request, task_id: int, session: SessionDep, labeler: WebLabeler, form: FormDep
) -> Response:
    """htmx: asks the project's model for an assistant turn; answers with a status fragment
    that polls until the suggestion is written (or says why there is none)."""
    try:
        data = validated(SuggestIn, forms.suggest_fields(form))
        job = suggestions.request_suggestion(session, task_id, labeler, data)
    except ServiceError as exc:
        return _suggestion(request, task_id, None, exc.message)
    return _suggestion(request, task_id, suggestions.Suggestion(job.id, "generating"))


@router.get("/tasks/{task_id}/suggestions/{job_id}")
def show_suggestion(
    request: Request, task_id: int, job_id: int, session: SessionDep, labeler: WebLabeler
) -> Response:
    suggestion = suggestions.get_suggestion(session, task_id, job_id, labeler)
    return _suggestion(request, task_id, suggestion)


def _suggestion(
    request: Request, task_id: int, suggestion: suggestions.Suggestion | None, error: str = ""
) -> Response:
    # A fragment only: htmx swaps it into the turn (it is never a page of its own).
    context = {"task_id": task_id, "suggestion": suggestion, "error": error}
    return render(request, "labeler/_suggestion.html", context)


@router.post("/tasks/{task_id}/skip")
def skip_task(
    request: Request, task_id: int, session: SessionDep, labeler: WebLabeler, form: FormDep
) -> Response:
    task = queue.own_task(session, task_id, labeler)
    try:
        queue.skip_task(session, task_id, labeler, validated(SkipIn, forms.skip_fields(form)))
    except ServiceError as exc:
        return _task_page(request, session, task, None, exc.message, exc.status_code)
    flash(request, "Skipped. The task goes to someone else.")
    return _go_to_next(request, session, task.item.project_id, labeler, task.item.kind)
