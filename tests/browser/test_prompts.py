import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.models import Prompt

from .helpers import expect_flash

pytestmark = pytest.mark.browser


def open_prompt_form(page: Page) -> None:
    page.get_by_role("link", name="Write a prompt").click()
    expect(page.get_by_role("heading", name="Write a prompt")).to_be_visible()


def save(page: Page) -> None:
    page.get_by_role("button", name="Save prompt").click()
    expect_flash(page, "Prompt saved.")


def prompt_by(world, author_id: int) -> Prompt:
    with world.db.session() as session:
        return session.scalars(select(Prompt).where(Prompt.author_id == author_id)).one()


def test_plain_prompt(page, world, login):
    login("alice")
    open_prompt_form(page)
    expect(page.get_by_label("Plain")).to_be_checked()
    expect(page.get_by_role("button", name="Add a pair")).to_be_hidden()
    expect(page.get_by_label("Use case")).to_be_hidden()
    page.get_by_label("Category").select_option("brainstorming")
    page.get_by_label("Instruction").fill("List five names for a bakery.")
    save(page)

    prompt = prompt_by(world, world.alice_id)
    assert (prompt.kind, prompt.category, prompt.language) == ("plain", "brainstorming", "en")
    assert prompt.instruction == "List five names for a bakery."
    assert prompt.few_shot_pairs is None
    assert prompt.use_case is None
    assert prompt.time_spent_ms is not None


def test_few_shot_prompt(page, world, login):
    pairs = [("cat", "chat"), ("dog", "chien"), ("bird", "oiseau")]
    login("alice")
    open_prompt_form(page)
    page.get_by_label("Few-shot").check()
    page.get_by_label("Category").select_option("rewrite")
    page.get_by_label("Instruction").fill("Translate the word into French.")
    rows = page.locator("#pairs li.pair")
    expect(rows).to_have_count(2)
    page.get_by_role("button", name="Add a pair").click()
    expect(rows).to_have_count(3)
    for row, (query, response) in zip(rows.all(), pairs, strict=True):
        row.get_by_label("Query").fill(query)
        row.get_by_label("Response").fill(response)
    save(page)

    prompt = prompt_by(world, world.alice_id)
    assert prompt.kind == "few_shot"
    assert prompt.few_shot_pairs == [{"query": q, "response": r} for q, r in pairs]
    assert prompt.use_case is None
    assert prompt.time_spent_ms is not None


def test_user_based_prompt(page, world, login):
    login("alice")
    open_prompt_form(page)
    page.get_by_label("User-based").check()
    expect(page.get_by_role("button", name="Add a pair")).to_be_hidden()
    page.get_by_label("Category").select_option("summarization")
    page.get_by_label("Instruction").fill("Summarize this support ticket in one sentence.")
    page.get_by_label("Use case").fill("A help-desk team wants ticket summaries.")
    save(page)

    prompt = prompt_by(world, world.alice_id)
    assert (prompt.kind, prompt.category) == ("user_based", "summarization")
    assert prompt.use_case == "A help-desk team wants ticket summaries."
    assert prompt.few_shot_pairs is None
    assert prompt.time_spent_ms is not None
