"""/api/v1: the labeler and admin actions of the web pages, for scripts and tools."""

from datetime import date
from typing import Annotated, Literal

from fastapi import BackgroundTasks, Body, Query, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy import text

from app.api.routing import api_router
from app.deps import ApiAdmin, ApiLabeler, ApiUser, SessionDep
from app.errors import validated
from app.models import Task
from app.schemas import api
from app.schemas.admin import GroupIn, ProjectSettingsIn, RankingItemIn, TokenIn, UserIn
from app.schemas.audit import AuditFilter, AuditPageOut
from app.schemas.labeling import ComparisonIn, DemonstrationIn, PromptIn, RankingIn, SkipIn
from app.schemas.quality import (
    HeldPromptOut,
    QualityReportOut,
    ReviewIn,
    StatsFilter,
    UserOverCapOut,
)
from app.schemas.screening import GoldItemIn
from app.schemas.snapshot import ExportRequest
from app.services import (
    activity,
    audit,
    exports,
    gold,
    groups,
    hygiene,
    import_files,
    imports,
    projects,
    prompts,
    queue,
    submissions,
    users,
)
from app.services.quality_report import QualityReport, project_report

router = api_router()


@router.get("/health", tags=["health"], response_model=api.Health)
def health(session: SessionDep) -> api.Health:
    session.execute(text("SELECT 1"))
    return api.Health(status="ok")


@router.get("/me", tags=["account"], response_model=api.UserOut)
def me(user: ApiUser) -> api.UserOut:
    return api.UserOut.model_validate(user)


# --- Labeling (the busiest routes, so first: FastAPI tries routes in order) -------------------


@router.get("/me/today", tags=["labeling"], response_model=api.TodayOut)
def today(session: SessionDep, labeler: ApiLabeler) -> api.TodayOut:
    return api.TodayOut(**activity.done_today(session, labeler.id))


@router.get("/projects/{project_id}/waiting", tags=["labeling"], response_model=api.WaitingOut)
def waiting(project_id: int, session: SessionDep, labeler: ApiLabeler) -> api.WaitingOut:
    projects.get_project(session, project_id)
    return api.WaitingOut(**queue.waiting_counts(session, project_id, labeler.id))


@router.post(
    "/projects/{project_id}/prompts",
    tags=["labeling"],
    response_model=api.PromptCreated,
    status_code=201,
)
def create_prompt(
    project_id: int, data: PromptIn, session: SessionDep, labeler: ApiLabeler, response: Response
) -> api.PromptCreated:
    project = projects.get_project(session, project_id)
    prompt, created = prompts.create_prompt(session, project, labeler, data)
    if not created:
        response.status_code = 200
    return api.PromptCreated(**api.PromptOut.model_validate(prompt).model_dump(), created=created)


@router.post(
    "/projects/{project_id}/tasks/next",
    tags=["labeling"],
    response_model=api.TaskOut,
    responses={204: {"description": "Nothing is waiting for this labeler"}},
    summary="Lease the next task of a kind (or get back the one already leased)",
)
def next_task(
    project_id: int, kind: str, session: SessionDep, labeler: ApiLabeler
) -> api.TaskOut | Response:
    project = projects.get_project(session, project_id)
    task = queue.next_task(session, project, labeler, kind)
    if task is None:
        return Response(status_code=204)
    return _task_out(session, task)


@router.get("/tasks/{task_id}", tags=["labeling"], response_model=api.TaskOut)
def get_task(task_id: int, session: SessionDep, labeler: ApiLabeler) -> api.TaskOut:
    return _task_out(session, queue.own_task(session, task_id, labeler))


@router.post("/tasks/{task_id}/ranking", tags=["labeling"], response_model=api.RankingOut)
def submit_ranking(
    task_id: int, data: RankingIn, session: SessionDep, labeler: ApiLabeler
) -> api.RankingOut:
    return api.RankingOut.model_validate(
        submissions.submit_ranking(session, task_id, labeler, data)
    )


@router.post(
    "/tasks/{task_id}/demonstration", tags=["labeling"], response_model=api.DemonstrationOut
)
def submit_demonstration(
    task_id: int, data: DemonstrationIn, session: SessionDep, labeler: ApiLabeler
) -> api.DemonstrationOut:
    demonstration = submissions.submit_demonstration(session, task_id, labeler, data)
    return api.DemonstrationOut.model_validate(demonstration)


@router.post(
    "/tasks/{task_id}/comparison",
    tags=["labeling"],
    response_model=api.ComparisonOut,
    summary="Choose between the two answers: a is the first shown, b the second, or a tie",
)
def submit_comparison(
    task_id: int, data: ComparisonIn, session: SessionDep, labeler: ApiLabeler
) -> api.ComparisonOut:
    comparison = submissions.submit_comparison(session, task_id, labeler, data)
    return api.ComparisonOut.model_validate(comparison)


@router.post("/tasks/{task_id}/skip", tags=["labeling"], response_model=api.TaskStateOut)
def skip_task(
    task_id: int, data: SkipIn, session: SessionDep, labeler: ApiLabeler
) -> api.TaskStateOut:
    return api.TaskStateOut.model_validate(queue.skip_task(session, task_id, labeler, data))


def _task_out(session: SessionDep, task: Task) -> api.TaskOut:
    view = queue.task_view(session, task)
    return api.TaskOut(
        id=task.id,
        kind=task.item.kind,
        state=task.state,
        project_id=task.item.project_id,
        prompt_id=view.prompt.id,
        prompt_text=view.prompt.render(),
        prompt_kind=view.prompt.kind,
        category=view.prompt.category,
        language=view.prompt.language,
        completions=[api.ShownCompletion(id=cid, text=t) for cid, t in view.completions],
        served_at=task.served_at,
        lease_expires_at=task.lease_expires_at,
    )


# --- Projects (read: everyone; write: admins) ---------------------------------------------------


@router.get("/projects", tags=["projects"], response_model=list[api.ProjectOut])
def list_projects(session: SessionDep, _user: ApiUser) -> list[api.ProjectOut]:
    return [api.ProjectOut.model_validate(p) for p in projects.list_projects(session)]


@router.get("/projects/{project_id}", tags=["projects"], response_model=api.ProjectOut)
def get_project(project_id: int, session: SessionDep, _user: ApiUser) -> api.ProjectOut:
    return api.ProjectOut.model_validate(projects.get_project(session, project_id))


@router.post("/projects", tags=["admin"], response_model=api.ProjectOut, status_code=201)
def create_project(data: ProjectSettingsIn, session: SessionDep, admin: ApiAdmin) -> api.ProjectOut:
    return api.ProjectOut.model_validate(projects.create_project(session, data, admin))


@router.put("/projects/{project_id}", tags=["admin"], response_model=api.ProjectOut)
def update_project(
    project_id: int, data: ProjectSettingsIn, session: SessionDep, admin: ApiAdmin
) -> api.ProjectOut:
    project = projects.update_project(session, project_id, data, admin)
    return api.ProjectOut.model_validate(project)


@router.post(
    "/projects/{project_id}/ranking-items",
    tags=["admin"],
    response_model=api.ImportResult,
    status_code=201,
    summary="Bulk-add completions to rank (all or nothing; items sent before are skipped)",
)
def add_ranking_items(
    project_id: int, items: list[RankingItemIn], session: SessionDep, _admin: ApiAdmin
) -> api.ImportResult:
    project = projects.get_project(session, project_id)
    report = imports.import_ranking_items(
        session, project, list(enumerate(items, start=1)), unit="item"
    )
    return api.ImportResult(
        created=len(report.items),
        skipped=report.skipped,
        item_ids=[i.id for i in report.items],
        dropped_duplicates=report.dropped,
        held_for_review=report.held,
    )


@router.post(
    "/projects/{project_id}/imports/{kind}",
    tags=["admin"],
    response_model=api.FileImportResult,
    status_code=201,
    summary="Import a JSONL file: completions, OASST trees or chosen/rejected pairs "
    "(the request body; all or nothing; lines sent before are skipped)",
)
def import_file(
    project_id: int,
    kind: Literal["completions", "oasst", "pairs"],
    data: Annotated[bytes, Body(media_type="application/x-ndjson")],
    session: SessionDep,
    _admin: ApiAdmin,
) -> api.FileImportResult:
    project = projects.get_project(session, project_id)
    report = import_files.import_file(session, project, kind, data)
    return api.FileImportResult(
        kind=report.kind,
        message=report.message,
        counts=report.counts,
        dropped_duplicates=report.dropped,
    )


@router.post(
    "/projects/{project_id}/gold-items",
    tags=["admin"],
    response_model=api.ImportResult,
    status_code=201,
    summary="Add ranking items with researchers' answers to the gold pool (all or nothing)",
)
def add_gold_items(
    project_id: int, items: list[GoldItemIn], session: SessionDep, _admin: ApiAdmin
) -> api.ImportResult:
    project = projects.get_project(session, project_id)
    created = gold.add_gold_items(session, project, items)
    return api.ImportResult(
        created=len(created),
        skipped=0,
        item_ids=[i.id for i in created],
        dropped_duplicates=[],
        held_for_review=0,
    )


@router.get(
    "/projects/{project_id}/quality",
    tags=["admin"],
    response_model=QualityReportOut,
    summary="Agreement and labeler statistics (the admin quality page's numbers)",
)
def quality_report(
    project_id: int,
    session: SessionDep,
    _admin: ApiAdmin,
    since: date | None = None,
    until: date | None = None,
    labeler_ids: Annotated[list[int], Query()] = [],  # noqa: B006  (FastAPI copies defaults)
) -> QualityReportOut:
    project = projects.get_project(session, project_id)
    filters = validated(StatsFilter, {"since": since, "until": until, "labeler_ids": labeler_ids})
    return _quality_out(project_report(session, project, filters))


@router.get(
    "/projects/{project_id}/prompts/held",
    tags=["admin"],
    response_model=list[HeldPromptOut],
    summary="Prompts held out of queues for personal data, waiting for review",
)
def held_prompts(project_id: int, session: SessionDep, _admin: ApiAdmin) -> list[HeldPromptOut]:
    project = projects.get_project(session, project_id)
    return [HeldPromptOut.model_validate(p) for p in hygiene.held_prompts(session, project)]


@router.post(
    "/projects/{project_id}/prompts/{prompt_id}/review",
    tags=["admin"],
    response_model=HeldPromptOut,
    summary="Keep, redact or drop a prompt held for personal data",
)
def review_prompt(
    project_id: int, prompt_id: int, data: ReviewIn, session: SessionDep, admin: ApiAdmin
) -> HeldPromptOut:
    project = projects.get_project(session, project_id)
    prompt = hygiene.review_prompt(session, project, prompt_id, data.decision, admin)
    return HeldPromptOut.model_validate(prompt)


@router.get(
    "/projects/{project_id}/users-over-cap",
    tags=["admin"],
    response_model=list[UserOverCapOut],
    summary="Users with more prompts than the project uses (their earliest are used)",
)
def users_over_cap(project_id: int, session: SessionDep, _admin: ApiAdmin) -> list[UserOverCapOut]:
    project = projects.get_project(session, project_id)
    return [UserOverCapOut.model_validate(u) for u in hygiene.users_over_cap(session, project)]


def _quality_out(report: QualityReport) -> QualityReportOut:
    def dated(rows: list) -> list[dict]:  # type: ignore[type-arg]
        return [{**vars(row), "day": row.day.astype(date)} for row in rows]

    return QualityReportOut.model_validate(
        {
            **vars(report),
            "summary": vars(report.summary),
            "groups": [vars(g) for g in report.groups],
            "labelers": [vars(r) for r in report.labelers],
            "pairs": [vars(p) for p in report.pairs],
            "agreement_by_day": dated(report.agreement_by_day),
            "throughput": dated(report.throughput),
            "time_histogram": [vars(b) for b in report.time_histogram],
            "gold_by_day": dated(report.gold_by_day),
            "too_fast": [vars(t) for t in report.too_fast],
        }
    )


# --- Export snapshots (admins) ------------------------------------------------------------------


@router.post(
    "/exports",
    tags=["admin"],
    response_model=api.SnapshotOut,
    status_code=202,
    summary="Make an export snapshot; it is written in the background (poll its state)",
)
def create_export(
    data: ExportRequest,
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    admin: ApiAdmin,
    snapshot_id: str | None = None,
) -> api.SnapshotOut:
    settings = request.app.state.settings
    snapshot = exports.request_snapshot(session, settings, data, admin, snapshot_id)
    background.add_task(exports.run_snapshot, request.app.state.db, settings, snapshot.id)
    return api.SnapshotOut.model_validate(snapshot)


@router.get("/exports", tags=["admin"], response_model=list[api.SnapshotOut])
def list_exports(session: SessionDep, _admin: ApiAdmin) -> list[api.SnapshotOut]:
    return [api.SnapshotOut.model_validate(s) for s in exports.list_snapshots(session)]


@router.get("/exports/{snapshot_id}", tags=["admin"], response_model=api.SnapshotOut)
def get_export(snapshot_id: str, session: SessionDep, _admin: ApiAdmin) -> api.SnapshotOut:
    return api.SnapshotOut.model_validate(exports.get_snapshot(session, snapshot_id))


@router.get(
    "/exports/{snapshot_id}/archive",
    tags=["admin"],
    response_class=FileResponse,
    responses={200: {"content": {"application/gzip": {}}, "description": "The .tar.gz"}},
    summary="Download a finished snapshot as one .tar.gz",
)
def download_export(
    snapshot_id: str, request: Request, session: SessionDep, _admin: ApiAdmin
) -> FileResponse:
    snapshot = exports.get_snapshot(session, snapshot_id)
    path = exports.archive(request.app.state.settings, snapshot)
    return FileResponse(path, media_type="application/gzip", filename=path.name)


# --- Users and tokens (admins) ---------------------------------------------------------------


@router.get("/users", tags=["admin"], response_model=list[api.UserOut])
def list_users(session: SessionDep, _admin: ApiAdmin) -> list[api.UserOut]:
    return [api.UserOut.model_validate(u) for u in users.list_users(session)]


@router.post("/users", tags=["admin"], response_model=api.UserOut, status_code=201)
def create_user(data: UserIn, session: SessionDep, admin: ApiAdmin) -> api.UserOut:
    return api.UserOut.model_validate(users.create_user(session, data, admin))


@router.patch("/users/{user_id}", tags=["admin"], response_model=api.UserOut)
def set_user_active(
    user_id: int, data: api.UserActiveIn, session: SessionDep, admin: ApiAdmin
) -> api.UserOut:
    return api.UserOut.model_validate(users.set_active(session, user_id, data.is_active, admin))


@router.put(
    "/users/{user_id}/group",
    tags=["admin"],
    response_model=api.UserOut,
    summary="Put a labeler into the training or the held-out group",
)
def set_user_group(
    user_id: int, data: GroupIn, session: SessionDep, admin: ApiAdmin
) -> api.UserOut:
    user = groups.set_group(session, user_id, data.labeler_group, admin)
    return api.UserOut.model_validate(user)


@router.post(
    "/users/{user_id}/tokens", tags=["admin"], response_model=api.TokenCreated, status_code=201
)
def create_token(
    user_id: int, data: TokenIn, session: SessionDep, admin: ApiAdmin
) -> api.TokenCreated:
    user = users.get_user(session, user_id)
    token, plaintext = users.create_token(session, user, data.name, admin)
    return api.TokenCreated(**api.TokenOut.model_validate(token).model_dump(), token=plaintext)


@router.delete("/users/{user_id}/tokens/{token_id}", tags=["admin"], response_model=api.TokenOut)
def revoke_token(user_id: int, token_id: int, session: SessionDep, admin: ApiAdmin) -> api.TokenOut:
    return api.TokenOut.model_validate(users.revoke_token(session, token_id, user_id, admin))


# --- Audit log (admins) -------------------------------------------------------------------------


@router.get(
    "/audit",
    tags=["admin"],
    response_model=AuditPageOut,
    summary="Admin actions, newest first, filtered by actor, action and day; page with before_id",
)
def audit_log(
    session: SessionDep,
    _admin: ApiAdmin,
    actor: str | None = None,
    action: str | None = None,
    since: date | None = None,
    until: date | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> AuditPageOut:
    filters = validated(
        AuditFilter,
        {"actor": actor, "action": action, "since": since, "until": until,
         "before_id": before_id, "limit": limit},
    )  # fmt: skip
    page = audit.list_entries(session, filters)
    return AuditPageOut.model_validate(
        {"entries": page.entries, "next_before_id": page.next_before_id}, from_attributes=True
    )
