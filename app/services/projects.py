"""Projects: guidelines and the settings that govern their queues."""

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.models import Project
from app.schemas.admin import ProjectSettingsIn


def list_projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.id)))


def get_project(session: Session, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"There is no project {project_id}.")
    return project


def create_project(session: Session, data: ProjectSettingsIn) -> Project:
    project = Project(**data.model_dump())
    session.add(project)
    _commit_unique_name(session, data.name)
    return project


def update_project(session: Session, project_id: int, data: ProjectSettingsIn) -> Project:
    """New settings apply to items created from now on; queued items keep their slots."""
    project = get_project(session, project_id)
    for field, value in data.model_dump().items():
        setattr(project, field, value)
    _commit_unique_name(session, data.name)
    return project


def _commit_unique_name(session: Session, name: str) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"A project named {name!r} exists already.") from None
