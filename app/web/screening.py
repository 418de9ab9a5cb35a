"""The screening test: candidates take it; admins build it and review candidates."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from app.deps import FormDep, SessionDep, WebAdmin, WebCandidate, verify_csrf
from app.errors import InvalidInput, ServiceError, validated
from app.models import Task, User
from app.schemas.labeling import DemonstrationIn, RankingIn
from app.schemas.screening import (
    DecisionIn,
    GoldItemIn,
    GradeIn,
    ScreeningPromptIn,
    ScreeningSettingsIn,
)
from app.services import gold, projects, queue, screening, submissions
from app.web import forms
from app.web.labeler import _task_page
from app.web.render import flash, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])

# --- The candidate ----------------------------------------------------------------------------


@router.get("/screening")
def candidate_home(request: Request, session: SessionDep, candidate: WebCandidate) -> Response:
    attempt = screening.attempt_of(session, candidate)
    done, total = screening.progress(session, candidate)
    context = {
        "attempt": attempt,
        "tests": [] if attempt else screening.open_tests(session),
        "done": done,
        "total": total,
    }
    return render(request, "screening/home.html", context)


@router.post("/screening/projects/{project_id}/start")
def start(
    request: Request, project_id: int, session: SessionDep, candidate: WebCandidate
) -> Response:
    screening.start(session, projects.get_project(session, project_id), candidate)
    return _go_to_next(request, session, candidate)


@router.post("/screening/next")
def next_item(request: Request, session: SessionDep, candidate: WebCandidate) -> Response:
    return _go_to_next(request, session, candidate)


def _go_to_next(request: Request, session: SessionDep, candidate: User) -> Response:
    task = screening.next_task(session, candidate)
    if task is None:
        flash(request, "You have answered every item. Thank you: an admin will review them.")
        return RedirectResponse("/screening", status_code=303)
    return RedirectResponse(f"/screening/tasks/{task.id}", status_code=303)


def _screening_task_page(
    request: Request,
    session: SessionDep,
    task: Task,
    candidate: User,
    values: dict | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    done, total = screening.progress(session, candidate)
    extra = {"task_base": "/screening/tasks", "screening": {"done": done, "total": total}}
    return _task_page(request, session, task, values, error, status_code, extra)


@router.get("/screening/tasks/{task_id}")
def show_task(
    request: Request, task_id: int, session: SessionDep, candidate: WebCandidate
) -> Response:
    task = queue.own_task(session, task_id, candidate)
    return _screening_task_page(request, session, task, candidate)


@router.post("/screening/tasks/{task_id}/ranking")
def submit_ranking(
    request: Request, task_id: int, session: SessionDep, candidate: WebCandidate, form: FormDep
) -> Response:
    task = queue.own_task(session, task_id, candidate)
    values = forms.ranking_fields(form, task.completion_order or [])
    try:
        if missing := forms.missing_ranks(values):
            raise InvalidInput(f"Give every answer a rank: {missing} of them have none yet.")
        submissions.submit_ranking(session, task_id, candidate, validated(RankingIn, values))
    except ServiceError as exc:
        return _screening_task_page(
            request, session, task, candidate, values, exc.message, exc.status_code
        )
    return _go_to_next(request, session, candidate)


@router.post("/screening/tasks/{task_id}/demonstration")
def submit_demonstration(
    request: Request, task_id: int, session: SessionDep, candidate: WebCandidate, form: FormDep
) -> Response:
    task = queue.own_task(session, task_id, candidate)
    values = forms.demonstration_fields(form)
    try:
        data = validated(DemonstrationIn, values)
        submissions.submit_demonstration(session, task_id, candidate, data)
    except ServiceError as exc:
        return _screening_task_page(
            request, session, task, candidate, values, exc.message, exc.status_code
        )
    return _go_to_next(request, session, candidate)


# --- The admin: building the test -------------------------------------------------------------


def _builder(
    request: Request,
    session: SessionDep,
    project_id: int,
    error: str | None = None,
    values: dict | None = None,
    status_code: int = 200,
) -> Response:
    project = projects.get_project(session, project_id)
    test = screening.get_test(session, project)
    items = screening.test_items(session, project)
    context = {
        "project": project,
        "test": test,
        "settings": test or ScreeningSettingsIn(),
        "items": items,
        "answers": gold.answers(session, {i.id for i in items}),
        "attempts": screening.list_attempts(session, project),
        "error": error,
        "values": values or {},
    }
    return render(request, "admin/screening.html", context, status_code)


@router.get("/admin/projects/{project_id}/screening")
def builder(request: Request, project_id: int, session: SessionDep, _admin: WebAdmin) -> Response:
    return _builder(request, session, project_id)


@router.post("/admin/projects/{project_id}/screening/settings")
def save_settings(
    request: Request, project_id: int, session: SessionDep, admin: WebAdmin, form: FormDep
) -> Response:
    names = ("min_agreement_percent", "min_flag_accuracy_percent", "min_demonstration_grade")
    values = {name: str(form.get(name, "")) for name in names}
    try:
        project = projects.get_project(session, project_id)
        data = validated(ScreeningSettingsIn, values)
        screening.save_settings(session, project, data, admin)
    except ServiceError as exc:
        return _builder(request, session, project_id, exc.message, values, exc.status_code)
    flash(request, "Pass thresholds saved.")
    return RedirectResponse(f"/admin/projects/{project_id}/screening", status_code=303)


@router.post("/admin/projects/{project_id}/screening/rankings")
def add_ranking_item(
    request: Request, project_id: int, session: SessionDep, _admin: WebAdmin, form: FormDep
) -> Response:
    values = forms.gold_item_fields(form)
    try:
        project = projects.get_project(session, project_id)
        screening.add_ranking_item(session, project, validated(GoldItemIn, values))
    except ServiceError as exc:
        return _builder(request, session, project_id, exc.message, values, exc.status_code)
    flash(request, "Ranking item added to the screening test.")
    return RedirectResponse(f"/admin/projects/{project_id}/screening", status_code=303)


@router.post("/admin/projects/{project_id}/screening/prompts")
def add_prompt(
    request: Request, project_id: int, session: SessionDep, _admin: WebAdmin, form: FormDep
) -> Response:
    values = forms.screening_prompt_fields(form)
    try:
        project = projects.get_project(session, project_id)
        screening.add_prompt(session, project, validated(ScreeningPromptIn, values))
    except ServiceError as exc:
        return _builder(request, session, project_id, exc.message, values, exc.status_code)
    flash(request, "Demonstration prompt added to the screening test.")
    return RedirectResponse(f"/admin/projects/{project_id}/screening", status_code=303)


# --- The admin: reviewing a candidate ---------------------------------------------------------


def _review_page(
    request: Request,
    session: SessionDep,
    attempt_id: int,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    context = {"review": screening.review(session, attempt_id), "error": error}
    return render(request, "admin/screening_review.html", context, status_code)


@router.get("/admin/screening/{attempt_id}")
def review(request: Request, attempt_id: int, session: SessionDep, _admin: WebAdmin) -> Response:
    return _review_page(request, session, attempt_id)


@router.post("/admin/screening/{attempt_id}/grades/{demonstration_id}")
def grade(
    request: Request,
    attempt_id: int,
    demonstration_id: int,
    session: SessionDep,
    admin: WebAdmin,
    form: FormDep,
) -> Response:
    try:
        data = validated(GradeIn, {"grade": str(form.get("grade", ""))})
        screening.grade_demonstration(session, attempt_id, demonstration_id, data.grade, admin)
    except ServiceError as exc:
        return _review_page(request, session, attempt_id, exc.message, exc.status_code)
    flash(request, "Grade saved.")
    return RedirectResponse(f"/admin/screening/{attempt_id}", status_code=303)


@router.post("/admin/screening/{attempt_id}/decision")
def decide(
    request: Request, attempt_id: int, session: SessionDep, admin: WebAdmin, form: FormDep
) -> Response:
    try:
        data = validated(DecisionIn, {"decision": str(form.get("decision", ""))})
        attempt = screening.decide(session, attempt_id, data.decision, admin)
    except ServiceError as exc:
        return _review_page(request, session, attempt_id, exc.message, exc.status_code)
    flash(request, f"The candidate is now {attempt.state.replace('_', ' ')}.")
    return RedirectResponse(f"/admin/screening/{attempt_id}", status_code=303)
