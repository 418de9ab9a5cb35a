"""What the benchmarks that drive a real server share: throwaway databases (a SQLite file, or a
database on a PostgreSQL server started with scripts/postgres.sh), the server process (uvicorn
app.asgi:app, as `rankery serve` runs it) that can be killed and restarted on its port, a seeded
project with labelers and ranking items, and /proc readings of memory and CPU.

Everything listens on and talks to 127.0.0.1 only. The crash-safety test imports this module
too, so it holds no figures.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PASSWORD = "load-test-password"
IMPORT_BATCH = 1000
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Timeout)\b: ")
VOCABULARY = """
    the model answer question user data time way people work good first new long great little own
    other old right big high different small large next early young important few public bad same
    able explain write summary list reason step example because however therefore
"""
WORDS = VOCABULARY.split()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Databases -----------------------------------------------------------------------------------


class ThrowawayPostgres:
    """A PostgreSQL server in a temporary folder on a free loopback port (scripts/postgres.sh)."""

    def __init__(self, fsync: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rankery-bench-pg-"))
        self.fsync = fsync
        self.started = False

    def start(self) -> str:
        env = {**os.environ, "RANKERY_PG_FSYNC": "on" if self.fsync else "off"}
        out = subprocess.run(
            [str(ROOT / "scripts/postgres.sh"), "start", str(self.dir)],
            check=True, capture_output=True, text=True, env=env,
        ).stdout  # fmt: skip
        self.started = True
        return out.strip().split("=", 1)[1]

    def pids(self) -> list[int]:
        with contextlib.suppress(OSError, ValueError):
            return process_tree(int((self.dir / "data/postmaster.pid").read_text().split()[0]))
        return []

    def stop(self, keep: bool = False) -> None:
        if keep:
            print(f"  left PostgreSQL running: scripts/postgres.sh stop {self.dir} stops it")
            return
        if self.started:
            subprocess.run([str(ROOT / "scripts/postgres.sh"), "stop", str(self.dir)], check=False)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def throwaway_database(
    kind: str,
    workdir: Path,
    postgres_url: str | None = None,
    fsync: bool = False,
    keep: bool = False,
) -> Iterator[tuple[str, ThrowawayPostgres | None]]:
    """(SQLAlchemy URL of a new, empty database, the PostgreSQL server started for it if any).
    On PostgreSQL the database is created on `postgres_url`, or on a server started here.
    With `keep`, the database (and the server started for it) stay."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'rankery.db'}", None
        return

    from sqlalchemy import create_engine, make_url, text

    server = None
    if postgres_url is None:
        server = ThrowawayPostgres(fsync)
    try:
        server_url = postgres_url or server.start()  # type: ignore[union-attr]
        name = f"rankery_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(server_url).set(database=name).render_as_string(False)
            yield url, server
            if keep:
                print(f"  kept the PostgreSQL database {url}")
            else:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()
    finally:
        if server is not None:
            server.stop(keep)


@dataclass
class Seeded:
    project_id: int
    tokens: list[str]  # one API token per labeler
    items: int
    completions: int
    seconds: float


def words(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    length = 0
    while length < chars:
        word = rng.choice(WORDS)
        out.append(word)
        length += len(word) + 1
    return " ".join(out).capitalize() + "."


def seed(
    url: str,
    labelers: int,
    items: int,
    k: int = 0,
    prompt_chars: int = 200,
    completion_chars: int = 400,
    random_seed: int = 1,
    progress: bool = False,
) -> Seeded:
    """Migrate, then fill the database through the app's services (as an admin's import would):
    one project, `labelers` labelers with an API token each, `items` ranking items of K
    completions (K = k, or drawn from the project's range when k is 0)."""
    from sqlalchemy import text

    from app.db import Database
    from app.migrate import upgrade
    from app.schemas.admin import (
        CompletionIn,
        NewPromptIn,
        ProjectSettingsIn,
        RankingItemIn,
        UserIn,
    )
    from app.services import imports, projects, users

    started = time.perf_counter()
    rng = random.Random(random_seed)
    upgrade(url)
    db = Database(url)
    completions = 0
    try:
        with db.session() as session:
            project = projects.create_project(session, ProjectSettingsIn(name="Benchmark"))
            tokens = []
            for i in range(labelers):
                user = users.create_user(
                    session, UserIn(username=f"labeler{i:03d}", password=PASSWORD, role="labeler")
                )
                tokens.append(users.create_token(session, user, "benchmark")[1])
            for start in range(0, items, IMPORT_BATCH):
                batch = []
                for n in range(start, min(start + IMPORT_BATCH, items)):
                    size = k or rng.randint(project.k_min, project.k_max)
                    completions += size
                    prompt = NewPromptIn(
                        instruction=f"#{n}: " + words(rng, prompt_chars), user_id=f"u{n % 997}"
                    )
                    answers = [
                        CompletionIn(text=words(rng, completion_chars), model=f"model-{j}")
                        for j in range(size)
                    ]
                    batch.append((n + 1, RankingItemIn(prompt=prompt, completions=answers)))
                imports.import_ranking_items(session, project, batch)
                session.expunge_all()
                if progress:
                    print(f"\r  seeding: {min(start + IMPORT_BATCH, items):,} items", end="")
            if progress:
                print()
            if db.engine.dialect.name == "postgresql":
                # A live server's autovacuum would have analysed the new tables by now.
                session.execute(text("ANALYZE"))
                session.commit()
            project_id = project.id
    finally:
        db.dispose()
    return Seeded(project_id, tokens, items, completions, time.perf_counter() - started)


# --- The server ----------------------------------------------------------------------------------


class Server:
    """uvicorn app.asgi:app in its own process group, as `rankery serve` runs it. It keeps its
    port across restarts, so clients find it again after a kill."""

    def __init__(self, url: str, workdir: Path, workers: int = 1, access_log: bool = True) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        self.command = [
            sys.executable, "-m", "uvicorn", "app.asgi:app",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(workers), "--proxy-headers",
        ]  # fmt: skip
        if not access_log:
            self.command.append("--no-access-log")
        self.env = {**os.environ, "RANKERY_DATABASE_URL": url, "RANKERY_DATA_DIR": str(workdir)}
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until it answers /healthz with all its workers up."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {self.process.returncode}:\n{self.tail()}"
                )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as response,
            ):
                if response.status == 200 and self._workers_started():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"the server did not answer /healthz in {timeout:.0f} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL to every process of the server at once: no shutdown code runs."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # any worker left behind
        self.process.wait()

    def pids(self) -> list[int]:
        if self.process is None or self.process.poll() is not None:
            return []
        return process_tree(self.process.pid)

    def _workers_started(self) -> bool:
        """With --workers N, uvicorn's supervisor spawns N worker processes (and a helper)."""
        if self.workers == 1:
            return True
        started = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                started += b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        return started >= self.workers

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def errors(self) -> Counter[str]:
        """The exceptions the server logged (the last line of each traceback), counted."""
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(errors="replace").splitlines()
            return Counter(line[:160] for line in lines if EXCEPTION_LINE.match(line))
        return Counter()


# --- /proc: memory and CPU of a process tree -----------------------------------------------------


def process_tree(root: int) -> list[int]:
    """root and all its descendants (uvicorn's supervisor and workers, postgres backends)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy (not idle or waiting on I/O) since boot."""
    with contextlib.suppress(OSError, ValueError):
        ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return 0.0


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of unsorted values (0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]
