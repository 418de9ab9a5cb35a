"""Projects: guidelines and the settings that govern their queues."""

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.models import Project, User
from app.schemas.admin import ProjectSettingsIn
from app.services import audit


def list_projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.id)))


def get_project(session: Session, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"There is no project {project_id}.")
    return project


def create_project(session: Session, data: ProjectSettingsIn, actor: User | None = None) -> Project:
    project = Project(**data.model_dump())
    session.add(project)
    _flush_unique_name(session, data.name)
    audit.record(session, actor, "project.created", project, after=data.model_dump())
    session.commit()
    return project


def update_project(
    session: Session, project_id: int, data: ProjectSettingsIn, actor: User | None = None
) -> Project:
    """New settings apply to items created from now on; queued items keep their slots."""
    project = get_project(session, project_id)
    new = data.model_dump()
    before, after = audit.changes({field: getattr(project, field) for field in new}, new)
    if not after:
        return project
    for field, value in after.items():
        setattr(project, field, value)
    _flush_unique_name(session, data.name)
    audit.record(session, actor, "project.updated", project, before, after)
    session.commit()
    return project


def _flush_unique_name(session: Session, name: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"A project named {name!r} exists already.") from None
