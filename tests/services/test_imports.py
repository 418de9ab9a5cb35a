"""Completions imports: line-numbered errors, all or nothing, K within the project's range."""

import json

import pytest
from sqlalchemy import func, select

from app.errors import InvalidInput
from app.models import Completion, Ranking, Slot, User
from app.services import imports
from tests.factories import make_project, make_prompt, make_user


def jsonl(*lines: str) -> str:
    return "\n".join(lines)


GOOD = '{"prompt": {"instruction": "Q"}, "completions": [{"text": "a"}, {"text": "b"}, {"text": "c"}, {"text": "d"}]}'  # noqa: E501


def test_parse_reports_every_bad_line_by_number() -> None:
    with pytest.raises(InvalidInput) as error:
        imports.parse_jsonl(jsonl(GOOD, "[1, 2", '{"completions": []}', GOOD))
    assert "line 2: not valid JSON" in error.value.message
    assert "line 3:" in error.value.message
    assert "line 1" not in error.value.message and "line 4" not in error.value.message


def test_an_empty_file_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="no items"):
        imports.parse_jsonl("\n\n")


def test_items_get_one_slot_per_wanted_annotation(session) -> None:
    project = make_project(session, annotations_per_item=3)
    [item] = imports.import_ranking_items(session, project, imports.parse_jsonl(GOOD)).items
    slots = session.scalar(select(func.count()).select_from(Slot).where(Slot.item_id == item.id))
    assert slots == 3


def test_completions_can_be_added_to_an_existing_prompt(session) -> None:
    project = make_project(session)
    prompt = make_prompt(session, project, make_user(session))
    line = GOOD.replace('"prompt": {"instruction": "Q"}', f'"prompt_id": {prompt.id}')
    [item] = imports.import_ranking_items(session, project, imports.parse_jsonl(line)).items
    assert item.prompt_id == prompt.id


def test_an_unknown_prompt_id_imports_nothing(session) -> None:
    project = make_project(session)
    line = GOOD.replace('"prompt": {"instruction": "Q"}', '"prompt_id": 999')
    with pytest.raises(InvalidInput, match="line 2: there is no prompt 999"):
        imports.import_ranking_items(
            session, project, imports.parse_jsonl(jsonl(GOOD, line)), "line"
        )
    assert session.scalar(select(func.count()).select_from(Completion)) == 0


def test_importing_the_same_file_again_adds_nothing(session) -> None:
    project = make_project(session)
    imports.import_ranking_items(session, project, imports.parse_jsonl(GOOD))
    again = imports.import_ranking_items(session, project, imports.parse_jsonl(GOOD))
    assert again.items == [] and again.skipped == 1
    assert session.scalar(select(func.count()).select_from(Completion)) == 4


def test_a_file_that_is_not_utf8_is_refused_with_the_line() -> None:
    data = (GOOD + "\n" + GOOD.replace("Q", "caf\xe9")).encode("latin-1")
    with pytest.raises(InvalidInput, match=r"not UTF-8 text \(line 2"):
        imports.decode(data)


def test_a_truncated_file_is_named_as_such() -> None:
    with pytest.raises(InvalidInput, match=r"line 2: not valid JSON .*looks truncated"):
        imports.parse_jsonl(GOOD + "\n" + GOOD[:30])


RANKED = {
    "prompt": {"instruction": "Q", "user_id": "u1"},
    "completions": [{"id": x, "text": f"answer {x}"} for x in "abcd"],
    "ranking": [["b"], ["a", "c"], ["d"]],
}


def test_a_ranking_made_elsewhere_comes_in_with_its_ties(session) -> None:
    project = make_project(session)
    imports.import_ranking_items(session, project, imports.parse_jsonl(json.dumps(RANKED)))
    ranking = session.scalar(select(Ranking))
    ranked = [
        (session.get(Completion, e.completion_id).external_id, e.rank) for e in ranking.entries
    ]
    assert sorted(ranked, key=lambda pair: (pair[1], pair[0])) == [
        ("b", 1),
        ("a", 2),
        ("c", 2),
        ("d", 3),
    ]
    assert ranking.has_ties and session.get(User, ranking.labeler_id).username == "imported:jsonl"


def test_an_imported_ranking_leaves_the_wanted_annotations_open(session) -> None:
    project = make_project(session, annotations_per_item=2)
    imports.import_ranking_items(session, project, imports.parse_jsonl(json.dumps(RANKED)))
    states = sorted(session.scalars(select(Slot.state)))
    assert states == ["done", "open", "open"]


@pytest.mark.parametrize(
    ("ranking", "message"),
    [
        ([["b"], ["a", "c"], ["x"]], "names completion 'x', which this line lacks"),
        ([["b"], ["a", "c"]], "leaves out completion 'd'"),
        ([["b"], ["b", "a", "c", "d"]], "names a completion twice"),
    ],
)
def test_a_ranking_that_does_not_match_the_completions_is_refused(ranking, message) -> None:
    with pytest.raises(InvalidInput, match=f"line 1: .*{message}"):
        imports.parse_jsonl(json.dumps({**RANKED, "ranking": ranking}))


def test_a_ranking_of_one_completion_is_refused() -> None:
    line = {**RANKED, "completions": [{"id": "a", "text": "x"}], "ranking": [["a"]]}
    with pytest.raises(InvalidInput, match=r"at least 2 completions \(K >= 2\)"):
        imports.parse_jsonl(json.dumps(line))
