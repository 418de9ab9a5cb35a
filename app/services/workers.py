"""Worker tokens: created by admins, hashed, revocable, valid only on the worker endpoints."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import User, Worker
from app.models.base import utcnow
from app.security import hash_api_token, new_api_token
from app.services import audit


def create_worker(session: Session, name: str, actor: User | None = None) -> tuple[Worker, str]:
    """A new worker; its token's plaintext is returned once and never stored."""
    plaintext = new_api_token()
    worker = Worker(name=name, token_hash=hash_api_token(plaintext))
    session.add(worker)
    audit.record(session, actor, "worker.created", worker, after={"name": name})
    session.commit()
    return worker, plaintext


def list_workers(session: Session) -> list[Worker]:
    return list(session.scalars(select(Worker).order_by(Worker.id)))


def revoke_worker(session: Session, worker_id: int, actor: User | None = None) -> Worker:
    worker = session.get(Worker, worker_id)
    if worker is None:
        raise NotFound(f"There is no worker {worker_id}.")
    if worker.revoked_at is None:
        worker.revoked_at = utcnow()
        audit.record(session, actor, "worker.revoked", worker, after={"name": worker.name})
        session.commit()
    return worker


def worker_for_token(session: Session, plaintext: str) -> Worker | None:
    return session.scalar(
        select(Worker).where(
            Worker.token_hash == hash_api_token(plaintext), Worker.revoked_at.is_(None)
        )
    )
