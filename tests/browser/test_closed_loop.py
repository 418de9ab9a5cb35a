"""The closed loop, from the web UI alone (issue 6's "Done means"). On the demo project an admin
registers the demo's tiny base model, makes an export snapshot, creates a worker token and
queues SFT; a sample job puts K completions of the SFT model into the ranking queue; labelers
rank them in the browser; then RM, PPO, and an evaluation of PPO against SFT whose comparisons
labelers make in the browser, until the evaluate job's page shows a win rate and its interval.

The jobs run in a real `rankery worker` process (started with the token the page showed)
against a live server, on CPU, with the tiny model and settings small enough for a few minutes.
The job pages poll themselves; the test waits for what they show, with generous timeouts."""

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from app.config import Settings
from app.db import Database
from app.models import Completion, Item, Project, Slot, User
from app.services import demo, queue
from tests.factories import make_demonstration, rank_task
from trainer.tiny import build_demo_base

from .helpers import expect_flash, focus_first_completion

pytestmark = pytest.mark.browser

JOB_TIMEOUT = 900_000  # ms; a loaded two-core machine trains slowly, and nothing is timed
FINISHED = re.compile(r"^(succeeded|failed|cancelled)$")
TASK_URL = re.compile(r"/labeler/tasks/\d+$")
# Fast settings: a step or two per stage, short sequences, short answers.
SFT = {
    "epochs": 1,
    "batch_size": 2,
    "max_steps": 2,
    "max_length": 96,
    "dropout": 0,
    "learning_rate": 1e-3,
    "log_every": 1,
}
RM = {
    "epochs": 1,
    "batch_size": 4,
    "max_steps": 2,
    "max_length": 96,
    "learning_rate": 1e-3,
    "log_every": 1,
}
PPO = {
    "epochs": 1,
    "batch_size": 2,
    "minibatch_size": 2,
    "ppo_epochs": 1,
    "max_steps": 1,
    "max_length": 96,
    "max_new_tokens": 6,
    "learning_rate": 1e-4,
    "log_every": 1,
}
ANSWERS = {"max_new_tokens": 6}


@pytest.fixture
def database_url(sqlite_template: Path, tmp_path: Path) -> str:
    """SQLite only: the loop is the same on PostgreSQL, where leases and jobs are tested."""
    path = tmp_path / "rankery.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def demo_base(db: Database, settings: Settings) -> Path:
    """`rankery demo`'s project with its labelers' earlier work done (every waiting
    demonstration written, every imported item ranked in the order shown), and the demo's tiny
    base model built where `rankery demo` builds it, but not registered: the admin does that."""
    with db.session() as session:
        demo.load_demo(session)
        project = session.scalar(select(Project).where(Project.name == "Demo assistant"))
        labelers = session.scalars(
            select(User).where(User.role == "labeler").order_by(User.id)
        ).all()
        for labeler in labelers:
            while queue.waiting_counts(session, project.id, labeler.id)["demonstration"]:
                make_demonstration(session, project, labeler, f"{labeler.username}'s answer.")
            while task := queue.next_task(session, project, labeler, "ranking"):
                rank_task(session, task, labeler, list(range(1, len(task.item.completions) + 1)))
    base = settings.data_dir / "models" / demo.DEMO_BASE_MODEL
    return build_demo_base(base, demo.demo_texts())


@pytest.fixture
def log_in(browser: Browser, live_url: str) -> Iterator[Callable[[str], Page]]:
    """A fresh browser context per login (a demo user); script errors and CSP violations
    fail the test."""
    contexts, problems = [], []

    def open_as(username: str) -> Page:
        context = browser.new_context(base_url=live_url, viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
        page.on(
            "console",
            lambda message: (
                problems.append(f"console: {message.text}")
                if message.type == "error" and "Content Security Policy" in message.text
                else None
            ),
        )
        page.goto("/login")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(demo.DEMO_PASSWORD)
        with page.expect_navigation():
            page.get_by_role("button", name="Log in").click()
        return page

    yield open_as
    for context in contexts:
        context.close()
    assert not problems, problems


@pytest.fixture
def start_worker(live_url: str, tmp_path: Path) -> Iterator[Callable[[str], None]]:
    """Starts `rankery worker` with a token; stopped (with its job's process) at the end.
    Its log is tmp_path/worker.log."""
    started: list[subprocess.Popen] = []

    def start(token: str) -> None:
        rankery = Path(sys.executable).with_name("rankery")
        log = (tmp_path / "worker.log").open("w")
        started.append(subprocess.Popen(
            [str(rankery), "worker", "--api-url", live_url, "--token", token,
             "--poll-seconds", "0.5", "--gpus", "0"],
            env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
            stdout=log, stderr=subprocess.STDOUT,
        ))  # fmt: skip

    yield start
    for worker in started:
        worker.terminate()  # its job's process ends with it (PR_SET_PDEATHSIG)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


# --- The admin's steps ----------------------------------------------------------------------


def queue_job(page: Page, kind: str, **params: object) -> int:
    """Fill the jobs page's form for `kind` (other fields keep their defaults) and queue it;
    returns the job's id from the job page it lands on."""
    page.goto(f"/admin/jobs?kind={kind}")
    for name, value in params.items():
        field = page.locator(f"#f-{name}")
        if name == "snapshot":
            field.select_option(str(value))
        else:
            field.fill(str(value))
    page.get_by_role("button", name=f"Queue {kind} job").click()
    page.wait_for_url(re.compile(r"/admin/jobs/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def wait_until_finished(page: Page, tmp_path: Path) -> None:
    """Watch the job page (it polls itself) until the job ends; it must have succeeded."""
    state = page.locator("#job-state")
    expect(state).to_have_text(FINISHED, timeout=JOB_TIMEOUT)
    if state.inner_text() != "succeeded":
        worker_log = (tmp_path / "worker.log").read_text()[-3000:]
        pytest.fail(f"{page.locator('#job-live').inner_text()}\n--- worker ---\n{worker_log}")


def version_of(page: Page, job_id: int) -> int:
    """The model version a training job registered, as the model versions page lists it."""
    page.goto("/admin/models")
    row = page.locator("#versions tbody tr").filter(
        has=page.locator(f'a[href="/admin/jobs/{job_id}"]')
    )
    return int(row.get_attribute("id").removeprefix("version-"))


# --- The labelers' steps --------------------------------------------------------------------


def rank_everything_waiting(page: Page) -> int:
    """From the labeler's home, rank every waiting item by keyboard (in the order shown: a
    digit for each answer's place, then Enter); returns how many were ranked."""
    page.goto("/labeler")
    button = page.get_by_role("button", name=re.compile(r"^Rank completions \(\d+\)$"))
    if button.is_disabled():
        return 0
    button.click()
    page.wait_for_url(TASK_URL)  # loaded, so its keyboard handlers are in place
    ranked = 0
    while TASK_URL.search(page.url):
        task_url = page.url
        focus_first_completion(page)
        k = page.locator("#ranking li.completion").count()
        for place in range(1, k + 1):
            page.keyboard.press(str(place))
            if place < k:
                page.keyboard.press("ArrowDown")
        expect(page.locator("#ranking .place")).to_have_text([str(p) for p in range(1, k + 1)])
        page.keyboard.press("Enter")
        page.wait_for_url(lambda url, task_url=task_url: url != task_url)
        expect_flash(page, "Ranking saved.")
        ranked += 1
    return ranked


def compare_everything_waiting(page: Page) -> int:
    """From the labeler's home, answer every waiting comparison by keyboard (1: answer A as
    shown, then Enter); returns how many were answered."""
    page.goto("/labeler")
    button = page.get_by_role("button", name=re.compile(r"^Compare two answers \(\d+\)$"))
    if not button.count():
        return 0
    button.click()
    page.wait_for_url(TASK_URL)  # loaded, so its keyboard handlers are in place
    compared = 0
    while TASK_URL.search(page.url):
        task_url = page.url
        page.keyboard.press("1")
        expect(page.get_by_role("radio", name=re.compile("Answer A"))).to_be_checked()
        page.keyboard.press("Enter")
        page.wait_for_url(lambda url, task_url=task_url: url != task_url)
        expect_flash(page, "Choice saved.")
        compared += 1
    return compared


def sampled_items(db: Database, job_id: int) -> dict[int, tuple[int, list[str]]]:
    """The ranking items a sample job queued: item id -> (completions, its slots' states)."""
    with db.session() as session:
        completions = session.scalars(select(Completion).where(Completion.sampling.is_not(None)))
        items = {c.item_id for c in completions if c.sampling.get("job_id") == job_id}
        return {
            item: (
                len(session.get(Item, item).completions),
                list(session.scalars(select(Slot.state).where(Slot.item_id == item))),
            )
            for item in sorted(items)
        }


# --- The loop -------------------------------------------------------------------------------


def test_an_admin_goes_the_whole_loop_from_the_web_ui(
    log_in, start_worker, demo_base: Path, db: Database, tmp_path: Path
):
    admin = log_in("admin")
    project_link = admin.get_by_role("link", name="Demo assistant")
    project_id = int(project_link.get_attribute("href").rsplit("/", 1)[1])

    # The base model: the demo's tiny GPT-2, a local directory.
    admin.goto("/admin/models")
    admin.get_by_label("Name").fill("tiny-demo-base")
    admin.get_by_label("Local model directory").fill(str(demo_base))
    admin.get_by_role("button", name="Register").click()
    expect_flash(admin, "Registered tiny-demo-base as a base model.")
    base_row = admin.locator("#versions tbody tr", has_text="tiny-demo-base (v")
    base_id = int(base_row.get_attribute("id").removeprefix("version-"))

    # An export snapshot of the demo's data, from the exports page.
    admin.goto("/admin/exports")
    admin.get_by_label("Project").select_option(label="Demo assistant")
    admin.get_by_label("Id (optional)").fill("demo-1")
    admin.get_by_role("button", name="Make snapshot").click()
    expect(admin.locator("#progress")).to_contain_text("State: done", timeout=JOB_TIMEOUT)
    expect(admin.locator("#progress")).to_contain_text("sft.train.jsonl")

    # A worker, with the token the jobs page shows once.
    admin.goto("/admin/jobs")
    admin.get_by_label("Name").fill("cpu-1")
    admin.get_by_role("button", name="Create worker token").click()
    start_worker(admin.locator("#new-token").inner_text().strip())

    # SFT on the snapshot.
    sft_job = queue_job(admin, "sft", snapshot="demo-1", model_version_id=base_id, **SFT)
    wait_until_finished(admin, tmp_path)
    expect(admin.locator("#job-progress")).to_have_attribute("value", "1.0")
    sft = version_of(admin, sft_job)

    # K = 4 completions from the SFT model for the project's oldest train-split prompts.
    sample_job = queue_job(
        admin, "sample", project_id=project_id, model_version_ids=sft, k=4, max_prompts=2,
        **ANSWERS,
    )  # fmt: skip
    wait_until_finished(admin, tmp_path)
    new_items = sampled_items(db, sample_job)
    assert [k for k, _slots in new_items.values()] == [4, 4]

    # Labelers rank them (and an overlap item's second labeler, if one drew it).
    ranked = sum(rank_everything_waiting(log_in(name)) for name in ("alice", "bob", "carol"))
    slots = [state for _k, states in sampled_items(db, sample_job).values() for state in states]
    assert ranked == len(slots) and set(slots) == {"done"}

    # A reward model from the SFT model, on a new snapshot made with the job.
    rm_job = queue_job(admin, "rm", model_version_id=sft, **RM)
    wait_until_finished(admin, tmp_path)
    rm = version_of(admin, rm_job)

    # PPO: policy from SFT, optimizing the reward model.
    ppo_job = queue_job(admin, "ppo", model_version_id=sft, reward_model_version_id=rm, **PPO)
    wait_until_finished(admin, tmp_path)
    ppo = version_of(admin, ppo_job)

    # PPO against SFT on the test-split prompts, compared by training labelers.
    queue_job(
        admin, "evaluate", project_id=project_id, model_version_a_id=ppo,
        model_version_b_id=sft, labeler_group="training", **ANSWERS,
    )  # fmt: skip
    wait_until_finished(admin, tmp_path)
    expect(admin.locator("#evaluation")).to_contain_text("No comparisons yet")

    compared = sum(compare_everything_waiting(log_in(n)) for n in ("alice", "bob", "carol"))
    assert compared >= 1

    # The evaluation's block polls itself while comparisons are missing.
    expect(admin.locator("#win-rate")).to_have_text(re.compile(r"^\d+\.\d %$"), timeout=30_000)
    expect(admin.locator("#evaluation")).to_contain_text(
        re.compile(r"95 % Wilson interval \d+\.\d % \u2013 \d+\.\d %")
    )
    expect(admin.locator("#evaluation")).to_contain_text(f"{compared} of {compared} comparisons")
