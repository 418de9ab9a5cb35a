"""A labeler compares an evaluation's two answers with the keyboard only: 1 and 2 choose
answer A or B as shown, 0 a tie, Enter submits."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.models import Comparison, Completion, Project
from tests.factories import (
    answer_evaluation,
    make_evaluation,
    make_policy_version,
    make_test_project,
)

from .helpers import expect_flash

pytestmark = pytest.mark.browser


@pytest.fixture
def evaluated(world, tmp_path: Path) -> Project:
    """A project with two test-split prompts that two policy versions answered."""
    with world.db.session() as session:
        project = make_test_project(session, prompts=2, name="Evaluation")
        sft = make_policy_version(session, tmp_path / "sft")
        ppo = make_policy_version(session, tmp_path / "ppo")
        answer_evaluation(session, make_evaluation(session, project, ppo, sft))
        return project


def open_comparison_by_keyboard(page: Page) -> int:
    page.goto("/labeler")
    page.get_by_role("button", name=re.compile(r"^Compare two answers \(\d+\)$")).focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/labeler/tasks/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def answer_text(page: Page, choice: str) -> str:
    return page.locator(f"#answer-{choice} .text").inner_text().strip()


def stored_choice(world, task_id: int) -> str | None:
    """The text of the stored winner (None for a tie)."""
    with world.db.session() as session:
        comparison = session.scalar(select(Comparison).where(Comparison.task_id == task_id))
        assert comparison is not None, f"no comparison was stored for task {task_id}"
        winner = comparison.winner_id
        return None if winner is None else session.get(Completion, winner).text


def test_choosing_answer_b_with_the_keyboard(page, world, login, evaluated):
    login("alice")
    task_id = open_comparison_by_keyboard(page)
    right = answer_text(page, "b")
    expect(page.locator(".answer .text")).to_have_count(2)
    expect(page.locator("body")).not_to_contain_text("sft-job")  # the source stays hidden

    page.keyboard.press("1")
    expect(page.get_by_role("radio", name=re.compile("Answer A"))).to_be_checked()
    page.keyboard.press("2")
    expect(page.get_by_role("radio", name=re.compile("Answer B"))).to_be_checked()
    page.keyboard.press("Enter")

    expect_flash(page, "Choice saved.")
    assert stored_choice(world, task_id) == right


def test_a_tie_with_zero_then_the_next_comparison_follows(page, world, login, evaluated):
    login("alice")
    first = open_comparison_by_keyboard(page)
    page.keyboard.press("0")
    expect(page.get_by_role("radio", name=re.compile("tie"))).to_be_checked()
    page.keyboard.press("Enter")

    expect_flash(page, "Choice saved.")
    assert stored_choice(world, first) is None
    expect(page).to_have_url(re.compile(r"/labeler/tasks/\d+$"))
    assert int(page.url.rsplit("/", 1)[1]) != first


def test_enter_without_a_choice_stores_nothing_and_says_why(page, world, login, evaluated):
    login("alice")
    task_id = open_comparison_by_keyboard(page)
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("Choose answer A, answer B or a tie")
    with world.db.session() as session:
        assert session.scalar(select(Comparison).where(Comparison.task_id == task_id)) is None
