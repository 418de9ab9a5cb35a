import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.models import Ranking, Task

from .helpers import (
    completion,
    completions,
    expect_flash,
    focus_first_completion,
    open_next_task,
    shown_texts,
    stored_ranks,
)

pytestmark = pytest.mark.browser

SCREENSHOT = "/tmp/ranking.png"
UNRANKED = "\u2013"  # the en dash an unranked answer shows as its place


def focused_text(page: Page) -> str:
    return page.evaluate("document.activeElement.querySelector('.text').textContent").strip()


def place_by_keyboard(page: Page, wanted: list[str]) -> None:
    """Walk with the arrow keys to each answer in turn and type its place."""
    focus_first_completion(page)
    for place, text in enumerate(wanted, start=1):
        order = shown_texts(page)
        here, there = order.index(focused_text(page)), order.index(text)
        for _ in range(abs(there - here)):
            page.keyboard.press("ArrowDown" if there > here else "ArrowUp")
        page.keyboard.press(str(place))
        expect(completion(page, text)).to_be_focused()


def test_ranking_page_starts_unranked(page, login):
    login("alice")
    open_next_task(page, "Rank completions")
    expect(completions(page)).to_have_count(4)
    expect(completions(page).locator(".place")).to_have_text([UNRANKED] * 4)
    expect(page.get_by_role("button", name="Submit ranking")).to_be_visible()
    page.screenshot(path=SCREENSHOT, full_page=True)


def test_enter_before_ordering_asks_for_an_order_and_sends_nothing(page, world, login):
    login("alice")
    task_id = open_next_task(page, "Rank completions")
    focus_first_completion(page)
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("Put the answers in order first")
    expect(page).to_have_url(re.compile(rf"/labeler/tasks/{task_id}$"))
    page.keyboard.press("1")
    expect(page.get_by_role("alert")).to_be_hidden()
    with world.db.session() as session:
        assert session.get(Task, task_id).state == "active"
        assert session.query(Ranking).count() == 0


def test_ranking_with_the_keyboard_only(page, world, login):
    login("alice")
    task_id = open_next_task(page, "Rank completions")
    shown = shown_texts(page)
    wanted = [shown[2], shown[0], shown[3], shown[1]]
    place_by_keyboard(page, wanted)
    assert shown_texts(page) == wanted
    expect(completions(page).locator(".place")).to_have_text(["1", "2", "3", "4"])
    page.keyboard.press("Enter")
    expect_flash(page, "Ranking saved.")

    assert stored_ranks(world.db, task_id) == {text: i for i, text in enumerate(wanted, 1)}


def test_t_ties_an_answer_with_the_one_above(page, world, login):
    login("alice")
    task_id = open_next_task(page, "Rank completions")
    wanted = list(reversed(shown_texts(page)))
    place_by_keyboard(page, wanted)
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")  # now on the answer at place 2
    page.keyboard.press("t")
    expect(completions(page).locator(".place")).to_have_text(["1", "1", "3", "4"])
    expect(page.get_by_label("Some answers are tied")).to_be_checked()
    page.keyboard.press("Enter")
    expect_flash(page, "Ranking saved.")

    ranks = stored_ranks(world.db, task_id)
    assert ranks == {wanted[0]: 1, wanted[1]: 1, wanted[2]: 2, wanted[3]: 3}
    with world.db.session() as session:
        assert session.query(Ranking).filter_by(task_id=task_id).one().has_ties


def test_ranking_by_drag_and_drop(page, world, login):
    login("alice")
    # Playwright scrolls the drop target into view while the button is down, which would move
    # the page under the grabbed answer; a tall window keeps the whole list on screen.
    page.set_viewport_size({"width": 1280, "height": 1800})
    task_id = open_next_task(page, "Rank completions")
    wanted = list(reversed(shown_texts(page)))
    for place, text in enumerate(wanted):
        target = completions(page).nth(place)
        if shown_texts(page)[place] == text:
            continue
        # Grab the answer by its top edge and drop it on the upper part of the target.
        completion(page, text).drag_to(
            target, source_position={"x": 40, "y": 8}, target_position={"x": 40, "y": 8}
        )
    assert shown_texts(page) == wanted
    expect(completions(page).locator(".place")).to_have_text(["1", "2", "3", "4"])
    page.get_by_role("button", name="Submit ranking").click()
    expect_flash(page, "Ranking saved.")

    assert stored_ranks(world.db, task_id) == {text: i for i, text in enumerate(wanted, 1)}


def test_flags_and_quality_are_stored_with_the_ranking(page, world, login):
    login("alice")
    task_id = open_next_task(page, "Rank completions")
    shown = shown_texts(page)
    place_by_keyboard(page, shown)
    worst = completion(page, shown[-1])
    expect(worst.get_by_label("Hallucination")).to_be_hidden()  # flags start folded away
    worst.get_by_text("Flags").click()
    worst.get_by_label("Hallucination").check()
    worst.get_by_label("Quality").select_option("2")
    page.get_by_role("button", name="Submit ranking").click()
    expect_flash(page, "Ranking saved.")

    with world.db.session() as session:
        ranking = session.scalar(select(Ranking).where(Ranking.task_id == task_id))
        [entry] = [e for e in ranking.entries if e.rank == len(shown)]
        assert (entry.hallucination, entry.harmful, entry.quality) == (True, False, 2)


def test_the_best_answer_offers_no_tie(page, login):
    login("alice")
    open_next_task(page, "Rank completions")
    ties = completions(page).locator(".tie-field")
    expect(ties.first).to_be_hidden()
    expect(ties.nth(1)).to_be_visible()
