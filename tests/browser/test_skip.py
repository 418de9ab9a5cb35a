import pytest

from app.models import Task

from .helpers import expect_flash, open_next_task

pytestmark = pytest.mark.browser


def test_skipping_with_a_reason(page, world, login):
    login("alice")
    task_id = open_next_task(page, "Rank completions")
    page.get_by_text("Skip this task").click()
    page.get_by_label("Reason").select_option(label="Intent unclear")
    page.get_by_label("Note (optional)").fill("Which colour system is meant?")
    page.get_by_role("button", name="Skip", exact=True).click()
    expect_flash(page, "Skipped. The task goes to someone else.")

    with world.db.session() as session:
        task = session.get(Task, task_id)
        assert (task.state, task.skip_reason) == ("skipped", "intent_unclear")
        assert task.skip_note == "Which colour system is meant?"
        assert task.finished_at is not None
