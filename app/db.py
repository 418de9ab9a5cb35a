"""Engine and sessions. SQLite runs in WAL mode with foreign keys on; writers lock up front.

Web requests get their session through `Database.request_session`, which makes them wait for a
database slot (and, on SQLite, for the process's single writer turn) in the event loop. Waiting
there, instead of in a worker thread, is what keeps the server from starving itself: a thread
blocked on the connection pool or on SQLite's lock could hold the very thread the request that
owns the lock needs in order to finish.
"""

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from pathlib import Path

import anyio
from anyio.to_thread import run_sync
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

WRITE_OPTION = "rankery_write"
# Requests using the database at once, per process. Below anyio's 40 worker threads, so sync
# routes always find a thread; within the connection pool, so nobody waits on the pool. Few:
# every thread that waits on the database gives the GIL back and must take it again, and with
# dozens of them those handoffs cost more CPU than the overlapped waits save (labeler_load on
# PostgreSQL, 2 cores: 8 slots 80-86 cycles/s at 11-12 ms server CPU per cycle, 32 slots
# 65-77 cycles/s at 13-15 ms).
REQUEST_SLOTS = 8
POOL_SIZE = REQUEST_SLOTS
POOL_OVERFLOW = 16  # for sessions outside requests: CLI, background work
# A PostgreSQL connection back from a longer rest than this is pinged before use.
PING_AFTER_IDLE_SECONDS = 1.0


class Base(DeclarativeBase):
    pass


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy's "begin" event below decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        # A deferred transaction that reads and then writes fails with SQLITE_BUSY when another
        # writer committed in between; a writing session takes the lock first, so writers queue.
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str) -> Engine:
    pool = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        else:
            pool = {}  # one in-memory database per connection: SQLAlchemy picks its own pool
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **pool
        )
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, **pool)
    _ping_after_rest(engine)
    return engine


def _ping_after_rest(engine: Engine) -> None:
    """Ping a pooled connection before use if it rested longer than PING_AFTER_IDLE_SECONDS:
    after a database restart the pool then starts afresh instead of failing a request.
    SQLAlchemy's pool_pre_ping pings on every checkout, a round trip per request under load
    (one of nine a labeling request makes), when a connection back within the second is as
    good as one just pinged; one that breaks in use still invalidates the pool, as always."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < PING_AFTER_IDLE_SECONDS:
            return  # a new connection, or one in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise InvalidatePoolError(f"ping failed: {exc}") from exc


class Database:
    """An engine and its session factory; the app, the CLI and the tests each hold one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        # Its transactions begin with BEGIN IMMEDIATE on SQLite (see _on_begin).
        writer_engine = self.engine.execution_options(**{WRITE_OPTION: True})
        self.write_sessionmaker = sessionmaker(writer_engine, expire_on_commit=False)
        self.request_slots = anyio.Semaphore(REQUEST_SLOTS)
        # SQLite has one writer at a time; its writers queue here rather than in busy waits.
        self.sqlite_writer_turn = anyio.Lock() if url.startswith("sqlite") else None

    @contextmanager
    def session(self, write: bool = True) -> Iterator[Session]:
        """A session; `write=False` for read-only work, which on SQLite then never waits on
        (or blocks) writers. Both kinds may still write; a writer just queues up front."""
        with (self.write_sessionmaker if write else self.sessionmaker)() as session:
            try:
                yield session
            except BaseException:
                session.rollback()
                raise

    @asynccontextmanager
    async def request_session(self, write: bool) -> AsyncIterator[Session]:
        """The session of one web request; blocking work on it belongs in worker threads."""
        writer_turn = self.sqlite_writer_turn if write else None
        async with self.request_slots, writer_turn or nullcontext():
            session = (self.write_sessionmaker if write else self.sessionmaker)()
            try:
                yield session
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await _in_thread_if_connected(session, session.rollback)
                raise
            finally:
                with anyio.CancelScope(shield=True):
                    await _in_thread_if_connected(session, session.close)

    def dispose(self) -> None:
        self.engine.dispose()


async def _in_thread_if_connected(session: Session, action: Callable[[], None]) -> None:
    """Run `action` in a worker thread when it may talk to the database, else right here: a
    session without a transaction has nothing to roll back, so it is not worth a thread."""
    if session.in_transaction():
        await run_sync(action)
    else:
        action()
