"""OpenAssistant trees: prompter turns become prompts with their dialogue context, ranked
assistant replies become rankings by the imported labeler; all or nothing; idempotent."""

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.errors import InvalidInput
from app.models import Completion, Demonstration, Item, Prompt, Ranking, User
from app.services import import_oasst
from tests.factories import make_project

DATA = Path(__file__).parents[1] / "data"
THREE_TREES = DATA / "oasst_3_trees.jsonl"
# The 100 real trees shared with the project (beside the repository).
SHARED_TREES = Path(__file__).parents[3] / "shared" / "data" / "oasst_en_100_trees.jsonl"


def load(session, project, text: str) -> import_oasst.OasstReport:
    return import_oasst.import_trees(session, project, import_oasst.parse(text))


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def prompt(session, message_id: str) -> Prompt:
    return session.scalar(select(Prompt).where(Prompt.external_id == f"oasst:{message_id}"))


def tree(**changes: object) -> dict:
    """A small valid tree: one question, three ranked answers."""
    answers = [
        {"message_id": f"a{i}", "text": f"answer {i}", "role": "assistant", "rank": i}
        for i in range(3)
    ]
    root = {"message_id": "q", "text": "Why?", "role": "prompter", "replies": answers}
    root.update(changes)
    return {"message_tree_id": "q", "tree_state": "ready_for_export", "prompt": root}


def test_each_prompter_turn_becomes_a_prompt(session) -> None:
    report = load(session, make_project(session), THREE_TREES.read_text())
    assert report.prompts == count(session, Prompt) == 16


def test_a_later_prompter_turn_keeps_the_conversation_before_it_as_context(session) -> None:
    load(session, make_project(session), THREE_TREES.read_text())
    later = prompt(session, "58ed77f4-59a4-47c1-9cd3-61f3835ffda5")
    assert later.kind == "dialogue"
    assert [m["role"] for m in later.context] == ["user", "assistant", "user", "assistant"]
    assert later.context[0]["content"].startswith("What is the syntax for each of pythons")
    assert later.instruction.startswith("Are they free?")


def test_ranked_replies_become_one_ranking_by_the_imported_labeler(session) -> None:
    load(session, make_project(session), THREE_TREES.read_text())
    root = prompt(session, "054e1df3-35e0-4bb8-a585-607dbdcd24e0")
    item = session.scalar(select(Item).where(Item.prompt_id == root.id))
    ranking = session.scalar(select(Ranking).where(Ranking.item_id == item.id))
    labeler = session.get(User, ranking.labeler_id)
    ranked = [session.get(Completion, e.completion_id).external_id for e in ranking.entries]
    assert labeler.username == "imported:oasst" and not labeler.is_active
    assert ranked == [
        "oasst:fa783ef0-4f4e-457d-b429-afd89edf8757",
        "oasst:03334b2a-f315-4a0d-b9ff-ac94e017e266",
        "oasst:8f5fa95e-0185-4960-a9c3-89382210cd6c",
    ]
    assert [e.rank for e in ranking.entries] == [1, 2, 3]
    assert ranking.time_spent_ms is None


def test_a_reply_without_a_rank_is_left_out_of_its_ranking(session) -> None:
    report = load(session, make_project(session), THREE_TREES.read_text())
    thanks = prompt(session, "a767579b-fe69-4204-8d43-040a417ebab1")
    item = session.scalar(select(Item).where(Item.prompt_id == thanks.id))
    assert len(item.completions) == 3
    assert report.rankings == count(session, Ranking) == 8


def test_the_best_human_reply_becomes_a_demonstration(session) -> None:
    report = load(session, make_project(session), THREE_TREES.read_text())
    first = prompt(session, "c63def7e-ecd4-40e5-a3c2-03c1240b5a21")
    demonstration = session.scalar(select(Demonstration).where(Demonstration.prompt_id == first.id))
    assert demonstration.messages[-1]["content"].startswith("Sure, here is a brief summary")
    # Model-written (synthetic) replies and turns with several unranked replies give none.
    assert report.demonstrations == count(session, Demonstration) == 11


def test_without_user_ids_a_tree_counts_as_one_author(session) -> None:
    load(session, make_project(session), THREE_TREES.read_text())
    per_tree = session.execute(
        select(Prompt.author_key, func.count(func.distinct(Prompt.split))).group_by(
            Prompt.author_key
        )
    ).all()
    assert len(per_tree) == 3 and all(splits == 1 for _, splits in per_tree)
    assert per_tree[0][0].startswith("prompt:oasst-tree:")


def test_a_user_id_in_the_file_decides_the_split(session) -> None:
    load(session, make_project(session), json.dumps(tree(user_id="u-7")))
    assert session.scalar(select(Prompt.author_key)) == "ext:u-7"


def test_importing_the_same_trees_again_adds_nothing(session) -> None:
    project = make_project(session)
    load(session, project, THREE_TREES.read_text())
    before = [count(session, m) for m in (Prompt, Item, Completion, Ranking, Demonstration)]
    report = load(session, project, THREE_TREES.read_text())
    assert report.skipped == 16 and report.prompts == 0
    after = [count(session, m) for m in (Prompt, Item, Completion, Ranking, Demonstration)]
    assert after == before


def test_unknown_fields_are_refused_with_their_line(session) -> None:
    text = "\n".join([json.dumps(tree()), json.dumps(tree(colour="blue"))])
    with pytest.raises(InvalidInput, match=r"line 2: prompt\.colour: Extra inputs"):
        load(session, make_project(session), text)


def test_wrong_types_are_refused_with_their_line(session) -> None:
    bad = tree()
    bad["prompt"]["replies"][1]["rank"] = "first"
    with pytest.raises(InvalidInput, match=r"line 1: prompt.replies.1.rank"):
        load(session, make_project(session), json.dumps(bad))


def test_a_single_ranked_reply_is_refused_because_k_is_below_two(session) -> None:
    bad = tree()
    for reply in bad["prompt"]["replies"][1:]:
        reply["rank"] = None
    with pytest.raises(InvalidInput, match="message q: only one reply has a rank"):
        load(session, make_project(session), json.dumps(bad))


def test_one_bad_tree_imports_nothing_from_the_file(session) -> None:
    bad = tree(message_id="q2")
    bad["prompt"]["replies"][0]["role"] = "prompter"
    text = "\n".join([THREE_TREES.read_text().strip(), json.dumps(bad)])
    with pytest.raises(InvalidInput, match="line 4: message q2: a prompter turn is answered"):
        load(session, make_project(session), text)
    assert count(session, Prompt) == count(session, Ranking) == 0


def test_deleted_messages_and_their_replies_are_left_out(session) -> None:
    data = tree()
    data["prompt"]["replies"][2]["deleted"] = True
    load(session, make_project(session), json.dumps(data))
    assert count(session, Completion) == 2


@pytest.mark.skipif(not SHARED_TREES.exists(), reason="shared/data is not beside the repository")
def test_the_hundred_shared_trees_import(session) -> None:
    report = load(session, make_project(session), SHARED_TREES.read_text())
    assert (report.prompts, report.rankings) == (480, 212)
    assert count(session, Prompt) == 480
