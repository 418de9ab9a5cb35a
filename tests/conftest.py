"""A fresh, migrated database per test, on SQLite and (when scripts/test.sh started one) on
PostgreSQL. Each database is copied from a template migrated once per run, so it is cheap."""

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app import security
from app.config import Settings
from app.db import Database
from app.main import create_app
from app.migrate import upgrade

POSTGRES_URL = os.environ.get("RANKERY_TEST_POSTGRES_URL")
TEST_SECRET = "test-secret-key"


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashing() -> Iterator[None]:
    """Real argon2, at the lowest cost: the production cost (~0.1-0.2 s a hash) would make
    every test that creates users slow, and hashing strength is not what tests check."""
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(security, "_hasher", cheap)
        yield


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if POSTGRES_URL is None and os.environ.get("CI"):
        raise pytest.UsageError("CI must run the PostgreSQL tests: use scripts/test.sh")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    if POSTGRES_URL is None:
        pytest.skip("no PostgreSQL server (scripts/test.sh starts one)")
    name = f"rankery_template_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    upgrade(_pg_url(name))
    yield name
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _pg_url(database: str) -> str:
    return sa.make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "rankery.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("postgres_template")
    name = f"rankery_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield _pg_url(name)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def empty_database(database_url: str, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes new databases without any table (not migrated) on the server of `database_url`:
    where backups are restored and old schema revisions are built."""
    created: list[str] = []
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT") if POSTGRES_URL else None

    def make() -> str:
        name = f"rankery_empty_{uuid.uuid4().hex[:12]}"
        if database_url.startswith("sqlite"):
            return f"sqlite:///{tmp_path / name}.db"
        assert admin is not None
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return _pg_url(name)

    yield make
    if admin is not None:
        with admin.connect() as conn:
            for name in created:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    # Deferred, so that a test inspecting the database never holds SQLite's write lock
    # while the app under test needs it.
    with db.session(write=False) as s:
        yield s


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, secret_key=TEST_SECRET, data_dir=tmp_path / "var")


@pytest.fixture
def client(settings: Settings, db: Database, session: Session) -> Iterator[TestClient]:
    # After each response the test's session ends its transaction, so what the test reads
    # next includes what the request wrote (SQLite keeps a snapshot per read transaction).
    with TestClient(create_app(settings, db), base_url="http://testserver") as test_client:
        test_client.event_hooks["response"].append(lambda _response: session.commit())
        yield test_client


@pytest.fixture
def live_url(settings: Settings, db: Database) -> Iterator[str]:
    """The app served by a real uvicorn server (in a thread) on a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings, db), port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
