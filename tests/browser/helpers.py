"""Small steps the browser tests share: finding tasks, reading the page, reading the database."""

import re

from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from app.db import Database
from app.models import Completion, Ranking


def expect_flash(page: Page, text: str) -> None:
    expect(page.locator("p.flash", has_text=text)).to_be_visible()


def open_next_task(page: Page, button: str) -> int:
    """From the labeler's home, take the next task behind `button`; returns the task's id."""
    page.goto("/labeler")
    page.get_by_role("button", name=re.compile(rf"^{re.escape(button)} \(\d+\)$")).click()
    page.wait_for_url(re.compile(r"/labeler/tasks/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def completions(page: Page) -> Locator:
    return page.locator("#ranking li.completion")


def completion(page: Page, text: str) -> Locator:
    return completions(page).filter(has=page.locator(".text", has_text=text))


def shown_texts(page: Page) -> list[str]:
    """The completions' texts in the order the list shows them now."""
    return [t.strip() for t in completions(page).locator(".text").all_inner_texts()]


def focus_first_completion(page: Page) -> None:
    for _ in range(20):
        if page.evaluate("document.activeElement.matches('li.completion')"):
            break
        page.keyboard.press("Tab")
    expect(completions(page).first).to_be_focused()


def stored_ranks(db: Database, task_id: int) -> dict[str, int]:
    """The stored ranking of a task, keyed by completion text."""
    with db.session() as session:
        ranking = session.scalar(select(Ranking).where(Ranking.task_id == task_id))
        assert ranking is not None, f"no ranking was stored for task {task_id}"
        return {session.get(Completion, e.completion_id).text: e.rank for e in ranking.entries}
