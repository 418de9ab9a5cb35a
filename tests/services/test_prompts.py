"""Writing prompts: the three kinds, categories, limits, and idempotent submission."""

import pytest
from sqlalchemy import func, select

from app.models import Item, Prompt
from app.schemas.labeling import PromptIn
from tests.factories import make_project, make_prompt, make_user


def test_a_plain_prompt_is_stored_and_queued_for_a_demonstration(session) -> None:
    project = make_project(session)
    prompt = make_prompt(session, project, make_user(session), language="de", category="chat")

    item = session.scalar(select(Item).where(Item.prompt_id == prompt.id))
    assert (prompt.kind, prompt.category, prompt.language) == ("plain", "chat", "de")
    assert item.kind == "demonstration"


def test_a_few_shot_prompt_keeps_its_pairs_as_a_list(session) -> None:
    pairs = [{"query": "2+2", "response": "4"}, {"query": "3+3", "response": "6"}]
    prompt = make_prompt(
        session,
        make_project(session),
        make_user(session),
        kind="few_shot",
        instruction="Add.",
        few_shot_pairs=pairs,
    )
    assert prompt.few_shot_pairs == pairs
    assert prompt.render() == "Add.\n\nQ: 2+2\nA: 4\n\nQ: 3+3\nA: 6"


def test_a_user_based_prompt_keeps_its_use_case(session) -> None:
    prompt = make_prompt(
        session, make_project(session), make_user(session), kind="user_based", use_case="Travel"
    )
    assert prompt.use_case == "Travel"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "few_shot"}, "at least one query/response pair"),
        ({"kind": "user_based"}, "needs the use case"),
        ({"instruction": "   "}, "at least 1 character"),
        ({"instruction": "x" * 20_001}, "at most 20000"),
        ({"category": "poetry"}, "category"),
        ({"language": "English!"}, "language"),
        ({"few_shot_pairs": [{"query": "q", "response": "r"}]}, "only few-shot prompts"),
    ],
)
def test_invalid_prompts_are_refused(fields, message) -> None:
    data = {"kind": "plain", "category": "generation", "instruction": "Write.", **fields}
    with pytest.raises(ValueError, match=message):
        PromptIn.model_validate(data)


def test_a_resubmitted_prompt_form_stores_one_prompt(session) -> None:
    project, author = make_project(session), make_user(session)
    first = make_prompt(session, project, author, submission_key="abcdefgh12")
    again = make_prompt(session, project, author, submission_key="abcdefgh12")

    assert first.id == again.id
    assert session.scalar(select(func.count()).select_from(Prompt)) == 1
