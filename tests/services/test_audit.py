"""The audit log: every admin action leaves exactly one entry, written in the action's own
transaction, with who, when, what and the values before and after."""

from collections.abc import Callable
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput
from app.models import AuditEntry, Demonstration, User
from app.schemas.admin import ProjectSettingsIn, UserIn
from app.schemas.audit import AuditFilter
from app.schemas.jobs import BaseModelIn, JobIn
from app.schemas.screening import ScreeningSettingsIn
from app.schemas.snapshot import ExportRequest
from app.services import (
    audit,
    exports,
    groups,
    hygiene,
    jobs,
    projects,
    registry,
    screening,
    users,
    workers,
)
from tests.factories import (
    PASSWORD,
    make_base_version,
    make_job,
    make_model_dir,
    make_project,
    make_prompt,
    make_screening_test,
    make_user,
    make_worker,
    take_screening_test,
)

Action = Callable[[], object]


def _user_created(session: Session, admin: User, _settings) -> Action:
    data = UserIn(username="dana", password=PASSWORD, role="labeler")
    return lambda: users.create_user(session, data, admin)


def _user_deactivated(session: Session, admin: User, _settings) -> Action:
    labeler = make_user(session)
    return lambda: users.set_active(session, labeler.id, False, admin)


def _user_activated(session: Session, admin: User, _settings) -> Action:
    labeler = make_user(session)
    users.set_active(session, labeler.id, False, admin)
    return lambda: users.set_active(session, labeler.id, True, admin)


def _user_group_changed(session: Session, admin: User, _settings) -> Action:
    labeler = make_user(session)
    return lambda: groups.set_group(session, labeler.id, "held_out", admin)


def _token_created(session: Session, admin: User, _settings) -> Action:
    labeler = make_user(session)
    return lambda: users.create_token(session, labeler, "script", admin)


def _token_revoked(session: Session, admin: User, _settings) -> Action:
    labeler = make_user(session)
    token, _ = users.create_token(session, labeler, "script", admin)
    return lambda: users.revoke_token(session, token.id, labeler.id, admin)


def _project_created(session: Session, admin: User, _settings) -> Action:
    return lambda: projects.create_project(session, ProjectSettingsIn(name="Poems"), admin)


def _project_updated(session: Session, admin: User, _settings) -> Action:
    project = make_project(session, name="Poems")
    data = ProjectSettingsIn(name="Poems", guidelines="Be kind.")
    return lambda: projects.update_project(session, project.id, data, admin)


def _screening_settings_saved(session: Session, admin: User, _settings) -> Action:
    project = make_project(session)
    data = ScreeningSettingsIn(min_agreement_percent=60)
    return lambda: screening.save_settings(session, project, data, admin)


def _finished_attempt(session: Session) -> int:
    project = make_project(session)
    make_screening_test(session, project)
    candidate = make_user(session, "candidate")
    take_screening_test(session, project, candidate, [1, 2, 3, 4], [])
    return screening.attempt_of(session, candidate).id


def _screening_graded(session: Session, admin: User, _settings) -> Action:
    attempt_id = _finished_attempt(session)
    demonstration = session.scalar(select(Demonstration))
    return lambda: screening.grade_demonstration(session, attempt_id, demonstration.id, 6, admin)


def _screening_decided(session: Session, admin: User, _settings) -> Action:
    attempt_id = _finished_attempt(session)
    return lambda: screening.decide(session, attempt_id, "approve", admin)


def _prompt_reviewed(session: Session, admin: User, _settings) -> Action:
    project = make_project(session)
    text = "Reply to jane.doe@example.com about her order."
    prompt = make_prompt(session, project, make_user(session), instruction=text,
                         confirm_warnings=True)  # fmt: skip
    return lambda: hygiene.review_prompt(session, project, prompt.id, "redact", admin)


def _export_requested(session: Session, admin: User, settings) -> Action:
    return lambda: exports.request_snapshot(session, settings, ExportRequest(), admin)


def _sample_job_params(session: Session, settings) -> dict:
    project = make_project(session)
    prompt = make_prompt(session, project, make_user(session))
    base = make_base_version(session, settings.data_dir / "base")
    return {"project_id": project.id, "model_version_ids": [base.id], "prompt_ids": [prompt.id]}


def _job_created(session: Session, admin: User, settings) -> Action:
    params = _sample_job_params(session, settings)
    data = JobIn(kind="sample", params=params)
    return lambda: jobs.create_job(session, data, admin, settings)


def _job_cancelled(session: Session, admin: User, settings) -> Action:
    job = make_job(session, "sample", _sample_job_params(session, settings))
    return lambda: jobs.cancel_job(session, job.id, admin)


def _job_retried(session: Session, admin: User, settings) -> Action:
    job = make_job(session, "sample", _sample_job_params(session, settings))
    jobs.cancel_job(session, job.id, admin)
    return lambda: jobs.retry_job(session, job.id, admin, settings.data_dir)


def _worker_created(session: Session, admin: User, _settings) -> Action:
    return lambda: workers.create_worker(session, "gpu-1", admin)


def _worker_revoked(session: Session, admin: User, _settings) -> Action:
    worker, _ = make_worker(session)
    return lambda: workers.revoke_worker(session, worker.id, admin)


def _model_registered(session: Session, admin: User, settings) -> Action:
    data = BaseModelIn(name="base", path=str(make_model_dir(settings.data_dir / "base")))
    return lambda: registry.register_base(session, data, admin)


# Each audited action: set up what it needs, and return the action itself.
CASES: dict[str, Callable[[Session, User, object], Action]] = {
    "user.created": _user_created,
    "user.deactivated": _user_deactivated,
    "user.activated": _user_activated,
    "user.group_changed": _user_group_changed,
    "token.created": _token_created,
    "token.revoked": _token_revoked,
    "project.created": _project_created,
    "project.updated": _project_updated,
    "screening.settings_saved": _screening_settings_saved,
    "screening.graded": _screening_graded,
    "screening.decided": _screening_decided,
    "prompt.reviewed": _prompt_reviewed,
    "export.requested": _export_requested,
    "job.created": _job_created,
    "job.cancelled": _job_cancelled,
    "job.retried": _job_retried,
    "worker.created": _worker_created,
    "worker.revoked": _worker_revoked,
    "model.registered": _model_registered,
}


def new_entries(session: Session, after_id: int) -> list[AuditEntry]:
    session.commit()
    query = select(AuditEntry).where(AuditEntry.id > after_id).order_by(AuditEntry.id)
    return list(session.scalars(query))


def last_id(session: Session) -> int:
    return session.scalar(select(func.coalesce(func.max(AuditEntry.id), 0)))


def test_every_audited_action_is_checked_below() -> None:
    assert set(CASES) == set(audit.ACTIONS)


@pytest.mark.parametrize("action", list(CASES))
def test_each_audited_action_leaves_exactly_one_entry(session, settings, action) -> None:
    admin = make_user(session, "admin")
    act = CASES[action](session, admin, settings)
    before = last_id(session)

    act()

    entries = new_entries(session, before)
    assert [(e.action, e.actor_id, e.actor_name) for e in entries] == [
        (action, admin.id, admin.username)
    ]
    assert entries[0].target is not None


def test_an_action_from_the_command_line_names_no_admin(session) -> None:
    before = last_id(session)
    workers.create_worker(session, "gpu-1", None)
    [entry] = new_entries(session, before)
    assert (entry.actor_id, entry.actor_name) == (None, audit.COMMAND_LINE)


def test_an_entry_names_its_target_and_the_values_before_and_after(session) -> None:
    admin = make_user(session, "admin")
    project = make_project(session, name="Poems", k_max=9)
    before = last_id(session)

    projects.update_project(session, project.id, ProjectSettingsIn(name="Poems", k_max=6), admin)

    [entry] = new_entries(session, before)
    assert entry.target == f"project:{project.id}"
    assert (entry.before, entry.after) == ({"k_max": 9}, {"k_max": 6})


def test_saving_settings_that_change_nothing_leaves_no_entry(session) -> None:
    admin = make_user(session, "admin")
    project = make_project(session, name="Poems")
    before = last_id(session)
    projects.update_project(session, project.id, ProjectSettingsIn(name="Poems"), admin)
    assert new_entries(session, before) == []


def test_an_action_that_fails_leaves_no_entry(session) -> None:
    admin = make_user(session, "admin", username="ann")
    before = last_id(session)
    with pytest.raises(Conflict):
        users.create_user(session, UserIn(username="ann", password=PASSWORD), admin)
    assert new_entries(session, before) == []


def test_an_entry_that_cannot_be_written_undoes_its_action(session, monkeypatch) -> None:
    admin = make_user(session, "admin")

    def broken(*_args, **_kwargs):
        raise RuntimeError("the log is unavailable")

    monkeypatch.setattr(audit, "record", broken)
    with pytest.raises(RuntimeError):
        users.create_user(session, UserIn(username="dana", password=PASSWORD), admin)
    session.rollback()

    assert session.scalar(select(User).where(User.username == "dana")) is None


def test_a_personal_data_decision_keeps_the_kinds_found_not_the_data(session) -> None:
    admin = make_user(session, "admin")
    act = _prompt_reviewed(session, admin, None)
    before = last_id(session)
    act()
    [entry] = new_entries(session, before)
    assert entry.before == {"review_state": "held", "findings": ["email"]}
    assert "jane" not in str(entry.before) + str(entry.after)


def test_a_screening_decision_records_the_role_change(session) -> None:
    admin = make_user(session, "admin")
    act = _screening_decided(session, admin, None)
    before = last_id(session)
    act()
    [entry] = new_entries(session, before)
    assert (entry.before["role"], entry.after["role"]) == ("candidate", "labeler")


# --- Reading the log ------------------------------------------------------------------------------


@pytest.fixture
def logged(session) -> tuple[User, User]:
    """Ann creates two users on the first of March; Bob creates a worker a day later."""
    ann, bob = make_user(session, "admin", username="ann"), make_user(session, "admin", "bob")
    users.create_user(session, UserIn(username="dana", password=PASSWORD), ann)
    users.create_user(session, UserIn(username="eric", password=PASSWORD), ann)
    workers.create_worker(session, "gpu-1", bob)
    first = datetime(2026, 3, 1, 12)
    for offset, (name, action) in enumerate([("ann", "user.created"), ("bob", "worker.created")]):
        session.execute(
            update(AuditEntry)
            .where(AuditEntry.actor_name == name, AuditEntry.action == action)
            .values(created_at=first + timedelta(days=offset))
        )
    session.commit()
    return ann, bob


def listed(session: Session, **filters) -> list[tuple[str, str]]:
    page = audit.list_entries(session, AuditFilter(**filters))
    return [(e.actor_name, e.action) for e in page.entries]


def test_entries_are_listed_newest_first(session, logged) -> None:
    assert listed(session) == [
        ("bob", "worker.created"),
        ("ann", "user.created"),
        ("ann", "user.created"),
        (audit.COMMAND_LINE, "user.created"),
        (audit.COMMAND_LINE, "user.created"),
    ]


def test_entries_are_filtered_by_actor_action_and_day(session, logged) -> None:
    assert listed(session, actor="bob") == [("bob", "worker.created")]
    assert listed(session, action="worker.created") == [("bob", "worker.created")]
    assert listed(session, since=date(2026, 3, 2), until=date(2026, 3, 2)) == [
        ("bob", "worker.created")
    ]
    assert listed(session, since=date(2026, 3, 1), until=date(2026, 3, 1)) == [
        ("ann", "user.created"),
        ("ann", "user.created"),
    ]


def test_pages_follow_each_other_without_gaps_or_repeats(session, logged) -> None:
    first = audit.list_entries(session, AuditFilter(limit=2))
    second = audit.list_entries(session, AuditFilter(limit=2, before_id=first.next_before_id))
    third = audit.list_entries(session, AuditFilter(limit=2, before_id=second.next_before_id))
    ids = [e.id for page in (first, second, third) for e in page.entries]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 5
    assert third.next_before_id is None


def test_an_unknown_action_is_refused(session) -> None:
    with pytest.raises(InvalidInput, match="no audited action 'user\\.eaten'"):
        audit.list_entries(session, AuditFilter(action="user.eaten"))


def test_the_csv_holds_every_matching_entry_with_its_values(session, logged) -> None:
    text = audit.to_csv(session, AuditFilter(actor="ann"))
    lines = text.splitlines()
    assert lines[0].split(",") == list(audit.CSV_COLUMNS)
    assert len(lines) == 3 and all(",ann," in line for line in lines[1:])
    assert "dana" in text and "eric" in text


def test_unknown_actions_cannot_be_recorded(session) -> None:
    with pytest.raises(ValueError, match="add it to audit\\.ACTIONS"):
        audit.record(session, None, "user.eaten")
