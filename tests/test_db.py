"""The PostgreSQL connection pool: pooled connections are pinged only after a rest."""

import pytest
import sqlalchemy as sa

from app import db as db_module
from app.db import Database

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@pytest.fixture
def pings(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The connections pinged from now on."""
    pinged: list[object] = []
    dialect = db.engine.dialect
    original = dialect.do_ping

    def counting_ping(dbapi_connection: object) -> bool:
        pinged.append(dbapi_connection)
        return original(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counting_ping)
    return pinged


def backend_pid(database: Database) -> int:
    with database.session(write=False) as session:
        return session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_back_a_moment_ago_is_used_without_a_ping(
    db: Database, pings: list[object]
) -> None:
    first = backend_pid(db)

    assert backend_pid(db) == first
    assert pings == []


def test_a_connection_back_from_a_rest_is_pinged(
    db: Database, pings: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = backend_pid(db)
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)

    assert backend_pid(db) == first
    assert len(pings) == 1


def test_a_connection_the_server_dropped_during_a_rest_is_replaced_before_use(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = backend_pid(db)
    with sa.create_engine(database_url).connect() as admin:
        admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)

    assert backend_pid(db) != first
