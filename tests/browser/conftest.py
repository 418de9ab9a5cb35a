"""Headless Chromium against a live Rankery server.

One uvicorn server and one Chromium run for the whole session; every test gets a fresh,
migrated and seeded SQLite database (a copy of a template file, swapped into the app) and a
fresh browser context (no cookies).
"""

import shutil
import socket
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect, sync_playwright

from app.config import Settings
from app.db import Database
from app.main import create_app
from app.migrate import upgrade
from app.schemas.admin import CompletionIn, NewPromptIn, ProjectSettingsIn, RankingItemIn, UserIn
from app.schemas.labeling import PromptIn
from app.services import imports, projects, prompts, users

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECRET = "browser-tests-secret"
PASSWORD = "correct-horse-battery"

expect.set_options(timeout=10_000)


# --- The database ---------------------------------------------------------------------------


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@dataclass
class World:
    """What the seed created: ids to query and the texts the pages show."""

    db: Database
    admin_id: int
    alice_id: int  # labeler A: ranks and demonstrates
    bob_id: int  # labeler B: wrote the prompt that A demonstrates
    project_id: int
    demo_prompt_id: int
    ranking_item_ids: list[int] = field(default_factory=list)


RANKING_ITEMS = [
    (
        "Name a primary colour.",
        ["Answer A: red.", "Answer B: blue.", "Answer C: yellow.", "Answer D: green."],
    ),
    (
        "How many legs does a spider have?",
        ["Answer A: eight.", "Answer B: six.", "Answer C: ten.", "Answer D: four."],
    ),
]
DEMO_PROMPT = "Write a two-line poem about autumn leaves."


def _seed(db: Database) -> dict[str, Any]:
    """An admin, two labelers, a project with K in 4..9, two imported ranking items with four
    completions each, and a prompt by bob that alice can demonstrate. Returns World's ids."""
    with db.session() as s:
        admin = users.create_user(s, UserIn(username="admin", password=PASSWORD, role="admin"))
        alice = users.create_user(s, UserIn(username="alice", password=PASSWORD))
        bob = users.create_user(s, UserIn(username="bob", password=PASSWORD))
        project = projects.create_project(
            s,
            ProjectSettingsIn(
                name="Browser project", guidelines="Put *helpfulness* first.", k_min=4, k_max=9
            ),
        )
        demo_prompt, _ = prompts.create_prompt(
            s, project, bob, PromptIn(kind="plain", category="generation", instruction=DEMO_PROMPT)
        )
        items = imports.import_ranking_items(
            s,
            project,
            [
                (
                    n,
                    RankingItemIn(
                        prompt=NewPromptIn(instruction=instruction, category="open_qa"),
                        completions=[CompletionIn(text=t, model="base") for t in texts],
                    ),
                )
                for n, (instruction, texts) in enumerate(RANKING_ITEMS, start=1)
            ],
        )
        return {
            "admin_id": admin.id,
            "alice_id": alice.id,
            "bob_id": bob.id,
            "project_id": project.id,
            "demo_prompt_id": demo_prompt.id,
            "ranking_item_ids": [item.id for item in items.items],
        }


@dataclass(frozen=True)
class Template:
    path: Path
    ids: dict[str, Any]


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """A migrated and seeded database file, made once; each test works on a copy of it."""
    path = tmp_path_factory.mktemp("template") / "rankery.db"
    upgrade(_sqlite_url(path))
    db = Database(_sqlite_url(path))
    ids = _seed(db)
    db.dispose()
    # Fold the write-ahead log into the file, so that copying the file copies everything.
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return Template(path, ids)


# --- The server -----------------------------------------------------------------------------


@dataclass
class LiveServer:
    base_url: str
    app: FastAPI


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    # Each test swaps its own database in (see `world`); until then the app has an empty one.
    settings = Settings(database_url="sqlite:///:memory:", secret_key=SECRET)
    app = create_app(settings, Database(settings.database_url))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    _wait_until_healthy(base_url, thread)
    yield LiveServer(base_url=base_url, app=app)
    server.should_exit = True
    thread.join(timeout=10)
    app.state.db.dispose()


def _wait_until_healthy(base_url: str, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("uvicorn stopped while starting")
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{base_url}/healthz did not answer")


@pytest.fixture
def world(live_server: LiveServer, template_db: Template, tmp_path: Path) -> Iterator[World]:
    """A fresh seeded database, served by the live server for this test only."""
    path = tmp_path / "rankery.db"
    shutil.copyfile(template_db.path, path)
    db = Database(_sqlite_url(path))
    previous = live_server.app.state.db
    live_server.app.state.db = db
    try:
        yield World(db=db, **template_db.ids)
    finally:
        live_server.app.state.db = previous
        db.dispose()


# --- The browser ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, live_server: LiveServer, world: World) -> Iterator[Page]:
    """A page in a fresh context; script errors and CSP violations fail the test."""
    context = browser.new_context(
        base_url=live_server.base_url, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    yield page
    context.close()
    assert not problems, problems


@pytest.fixture
def login(page: Page) -> Callable[[str], Page]:
    """Log in through the form as one of the seeded users; lands on their home page."""

    def log_in(username: str, password: str = PASSWORD) -> Page:
        page.goto("/login")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        with page.expect_navigation():
            page.get_by_role("button", name="Log in").click()
        return page

    return log_in
