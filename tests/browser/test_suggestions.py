"""The Suggest button of a dialogue demonstration, by keyboard: "generating…" while the worker
(simulated here through the worker API) writes the reply, then the reply in the turn's text
box, editable, and the stored demonstration records that it was used."""

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.models import Demonstration, ModelVersion, Project, Worker
from app.models.base import utcnow
from app.services import workers

from .helpers import expect_flash, open_next_task

pytestmark = pytest.mark.browser
SUGGESTED = "Leaves of amber fall; the quiet wind keeps them all."


def running_worker(world, tmp_path, with_policy: bool = True) -> str:
    """A worker seen just now (and a policy to suggest with); returns the worker's token."""
    with world.db.session() as session:
        _worker, token = workers.create_worker(session, "gpu-1")
        session.get(Worker, _worker.id).last_seen_at = utcnow()
        if with_policy:
            (tmp_path / "policy").mkdir()
            (tmp_path / "policy" / "config.json").write_text("{}")
            version = ModelVersion(
                name="sft-1", kind="policy", artifact_path=str(tmp_path / "policy")
            )
            session.add(version)
        session.commit()
    return token


def answer_suggestion(base_url: str, token: str, text: str) -> None:
    """What a worker does: claim the suggest job, finish it with the reply."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers) as http:
        spec = http.post("/api/v1/worker/claim", json={"kinds": ["suggest"]}).json()
        result = {"lease": spec["lease"], "outcome": "succeeded", "result": {"text": text}}
        assert http.post(f"/api/v1/worker/jobs/{spec['job_id']}/finish", json=result).is_success


def test_a_suggested_turn_is_generated_inserted_edited_and_recorded(
    page, world, login, live_server, tmp_path
):
    token = running_worker(world, tmp_path)
    login("alice")
    task_id = open_next_task(page, "Write a demonstration")
    page.get_by_label("A multi-turn dialogue").check()
    turns = page.locator("#turns li.turn")
    turns.nth(0).get_by_role("textbox").fill("Amber leaves let go.")
    page.get_by_role("button", name="Add a user turn and the assistant's reply").click()
    turns.nth(1).get_by_role("textbox").fill("Now make it rhyme.")

    turns.nth(2).get_by_role("button", name="Suggest").focus()
    page.keyboard.press("Enter")
    expect(turns.nth(2).get_by_role("status")).to_contain_text("Generating a suggestion…")
    answer_suggestion(live_server.base_url, token, SUGGESTED)

    box = turns.nth(2).get_by_role("textbox")
    expect(box).to_have_value(SUGGESTED)
    expect(box).to_be_focused()
    page.keyboard.press("End")
    page.keyboard.type(" Softly.")
    page.get_by_role("button", name="Submit demonstration").click()
    expect_flash(page, "Demonstration saved.")

    with world.db.session() as session:
        demo = session.scalars(select(Demonstration).where(Demonstration.task_id == task_id)).one()
    assert demo.messages[-1] == {"role": "assistant", "content": SUGGESTED + " Softly."}
    [used] = demo.suggestions
    assert (used["turn"], used["edited"]) == (2, True)


def test_the_button_says_so_when_no_model_can_suggest(page, world, login, tmp_path):
    running_worker(world, tmp_path, with_policy=False)
    with world.db.session() as session:
        assert session.scalar(select(Project.suggestion_model_id)) is None
    login("alice")
    open_next_task(page, "Write a demonstration")
    page.get_by_label("A multi-turn dialogue").check()
    page.get_by_role("button", name="Suggest").first.click()
    expect(page.get_by_role("alert")).to_contain_text("No model can suggest yet")
