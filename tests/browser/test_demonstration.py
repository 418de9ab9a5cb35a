import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.models import Demonstration

from .conftest import DEMO_PROMPT
from .helpers import expect_flash, open_next_task

pytestmark = pytest.mark.browser


def test_dialogue_demonstration(page, world, login):
    answer = "Amber leaves let go; the wind carries them home."
    follow_up = "Now make it rhyme."
    second = "Golden leaves drift down to blanket the quiet town."
    login("alice")
    task_id = open_next_task(page, "Write a demonstration")
    expect(page.get_by_role("region", name="Prompt")).to_contain_text(DEMO_PROMPT)

    page.get_by_label("A multi-turn dialogue").check()
    turns = page.locator("#turns li.turn")
    turns.nth(0).get_by_role("textbox").fill(answer)
    page.get_by_role("button", name="Add a user turn and the assistant's reply").click()
    expect(turns).to_have_count(3)
    turns.nth(1).get_by_role("textbox").fill(follow_up)
    turns.nth(2).get_by_role("textbox").fill(second)
    page.get_by_role("button", name="Submit demonstration").click()
    expect_flash(page, "Demonstration saved.")

    with world.db.session() as session:
        demo = session.scalars(select(Demonstration).where(Demonstration.task_id == task_id)).one()
    assert (demo.kind, demo.labeler_id, demo.prompt_id) == (
        "dialogue",
        world.alice_id,
        world.demo_prompt_id,
    )
    assert demo.messages == [
        {"role": "user", "content": DEMO_PROMPT},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": follow_up},
        {"role": "assistant", "content": second},
    ]


def test_line_breaks_are_stored_as_newlines(page, world, login):
    answer = "Amber leaves let go,\nthe wind carries them home."
    login("alice")
    task_id = open_next_task(page, "Write a demonstration")
    page.get_by_label("Your answer, as the assistant").fill(answer)
    page.get_by_role("button", name="Submit demonstration").click()
    expect_flash(page, "Demonstration saved.")

    with world.db.session() as session:
        demo = session.scalars(select(Demonstration).where(Demonstration.task_id == task_id)).one()
    assert demo.kind == "single"
    assert demo.messages[-1] == {"role": "assistant", "content": answer}
