"""Chosen/rejected pairs: the shared dialogue becomes the prompt and its context, the two
answers a K = 2 ranking (chosen first); all or nothing; idempotent."""

import json

import pytest
from sqlalchemy import func, select

from app.errors import InvalidInput
from app.models import Completion, Item, Prompt, Ranking, User
from app.services import import_pairs
from tests.factories import make_project

HH = {
    "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tell me a joke.\n\nAssistant: Why did the chicken cross the road?",  # noqa: E501
    "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tell me a joke.\n\nAssistant: No.",
}


def load(session, project, *pairs: dict) -> import_pairs.PairsReport:
    text = "\n".join(json.dumps(p) for p in pairs)
    return import_pairs.import_pairs(session, project, import_pairs.parse(text))


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def ranked_texts(session) -> list[str]:
    ranking = session.scalar(select(Ranking))
    return [session.get(Completion, e.completion_id).text for e in ranking.entries]


def test_an_hh_pair_becomes_a_dialogue_prompt_and_a_k2_ranking(session) -> None:
    load(session, make_project(session), HH)
    prompt = session.scalar(select(Prompt))
    assert prompt.instruction == "Tell me a joke."
    assert prompt.context == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
    assert ranked_texts(session) == ["Why did the chicken cross the road?", "No."]
    labeler = session.get(User, session.scalar(select(Ranking.labeler_id)))
    assert labeler.username == "imported:pairs"


def test_an_explicit_prompt_with_plain_answers(session) -> None:
    load(session, make_project(session), {"prompt": "Why?", "chosen": "So.", "rejected": "No."})
    prompt = session.scalar(select(Prompt))
    assert (prompt.instruction, prompt.context, prompt.kind) == ("Why?", None, "imported")
    assert ranked_texts(session) == ["So.", "No."]


def test_conversational_message_lists(session) -> None:
    question = {"role": "user", "content": "2+2?"}
    load(
        session,
        make_project(session),
        {
            "chosen": [question, {"role": "assistant", "content": "4"}],
            "rejected": [question, {"role": "assistant", "content": "5"}],
        },
    )
    assert session.scalar(select(Prompt.instruction)) == "2+2?"
    assert ranked_texts(session) == ["4", "5"]


def test_pairs_with_the_same_dialogue_share_one_prompt(session) -> None:
    other = {**HH, "rejected": HH["rejected"].replace("No.", "I forgot it.")}
    report = load(session, make_project(session), HH, other)
    assert (report.prompts, report.rankings) == (1, 2)
    assert count(session, Prompt) == 1 and count(session, Item) == 2


def test_importing_the_same_pairs_again_adds_nothing(session) -> None:
    project = make_project(session)
    load(session, project, HH)
    report = load(session, project, HH)
    assert (report.rankings, report.skipped) == (0, 1)
    assert count(session, Ranking) == 1 and count(session, Prompt) == 1


def test_a_user_id_decides_the_split(session) -> None:
    load(session, make_project(session), {**HH, "user_id": "hh-42"})
    assert session.scalar(select(Prompt.author_key)) == "ext:hh-42"


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        (
            {**HH, "rejected": HH["rejected"].replace("Hello!", "Hey!")},
            "differ in their last turn only",
        ),
        ({**HH, "rejected": HH["chosen"]}, "the same answer"),
        ({"prompt": "Why?", "chosen": "So."}, "rejected: Field required"),
        ({**HH, "score": 1}, "score: Extra inputs"),
        ({"prompt": "Why?", "chosen": 4, "rejected": "No."}, "chosen"),
        ({"chosen": "\n\nHuman: Hi", "rejected": "\n\nHuman: Yo"}, "the assistant's"),
        ({"prompt": "Why?", "chosen": "", "rejected": "No."}, "an answer is empty"),
    ],
)
def test_a_bad_pair_is_refused_with_its_line_and_nothing_is_imported(session, pair, message):
    with pytest.raises(InvalidInput, match="line 2: .*" + message):
        load(session, make_project(session), HH, pair)
    assert count(session, Prompt) == count(session, Ranking) == 0
