"""Prompt hygiene: duplicates by common prefix, the per-user cap, and review of personal data."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import InvalidInput, NeedsConfirmation
from app.schemas.admin import CompletionIn, NewPromptIn, RankingItemIn
from app.schemas.labeling import SkipIn
from app.services import hygiene, imports, queue
from tests.factories import make_project, make_prompt, make_ranking_item, make_user


def test_identical_texts_are_duplicates_whatever_their_case_and_spacing() -> None:
    assert hygiene.find_duplicates(["Write a poem.", "write  a POEM."], 100, 90) == {1: 0}


def test_a_long_shared_prefix_makes_a_duplicate() -> None:
    preamble = "You are a helpful assistant. Answer the question below carefully. " * 2
    texts = [preamble + "What is 2 + 2?", preamble + "Name a river."]
    assert hygiene.find_duplicates(texts, min_prefix=100, percent=90) == {1: 0}


def test_prompts_that_only_start_alike_are_kept() -> None:
    texts = ["Write a poem about cats.", "Write a poem about dogs.", "Summarize this."]
    assert hygiene.find_duplicates(texts, min_prefix=100, percent=90) == {}


def test_of_a_group_of_duplicates_the_earliest_is_kept() -> None:
    texts = ["zebra", "Same question?", "same question?", "SAME QUESTION?"]
    assert hygiene.find_duplicates(texts, 100, 90) == {2: 1, 3: 1}


@given(st.lists(st.text(alphabet="ab ", min_size=1, max_size=12), max_size=30))
def test_batch_dedup_keeps_exactly_one_of_each_normalized_text(texts: list[str]) -> None:
    duplicates = hygiene.find_duplicates(texts, min_prefix=10_000, percent=100)
    kept = [t for i, t in enumerate(texts) if i not in duplicates]
    assert len({hygiene.normalize(t) for t in kept}) == len(kept)
    assert {hygiene.normalize(t) for t in kept} == {hygiene.normalize(t) for t in texts}


def test_a_labeler_is_warned_before_a_duplicate_is_stored(session) -> None:
    project = make_project(session)
    make_prompt(session, project, make_user(session), instruction="Explain photosynthesis.")

    with pytest.raises(NeedsConfirmation, match="duplicate of prompt"):
        make_prompt(session, project, make_user(session), instruction="explain photosynthesis.")


def test_a_confirmed_duplicate_is_stored(session) -> None:
    project = make_project(session)
    make_prompt(session, project, make_user(session), instruction="Explain photosynthesis.")
    prompt = make_prompt(
        session,
        project,
        make_user(session),
        instruction="Explain photosynthesis.",
        confirm_warnings=True,
    )
    assert prompt.review_state == "clear"


def test_personal_data_warns_and_a_confirmed_prompt_is_held_out_of_queues(session) -> None:
    project = make_project(session)
    author, other = make_user(session), make_user(session)
    text = "Reply to jane.doe@example.com about her order."
    with pytest.raises(NeedsConfirmation, match="e-mail address"):
        make_prompt(session, project, author, instruction=text)

    prompt = make_prompt(session, project, author, instruction=text, confirm_warnings=True)

    assert prompt.review_state == "held"
    assert queue.next_task(session, project, other, "demonstration") is None


def test_names_a_labeler_marks_hold_the_prompt(session) -> None:
    prompt = make_prompt(
        session,
        make_project(session),
        make_user(session),
        instruction="Write a birthday card for Maria Lopez.",
        person_names=["Maria Lopez"],
        confirm_warnings=True,
    )
    assert prompt.pii_findings == [{"kind": "name", "text": "Maria Lopez"}]


@pytest.mark.parametrize(
    ("decision", "state", "served"), [("keep", "kept", True), ("drop", "dropped", False)]
)
def test_an_admin_keeps_or_drops_a_held_prompt(session, decision, state, served) -> None:
    project = make_project(session)
    prompt = make_prompt(
        session,
        project,
        make_user(session),
        instruction="Call 030 1234 5678.",
        confirm_warnings=True,
    )

    hygiene.review_prompt(session, project, prompt.id, decision)

    assert prompt.review_state == state
    task = queue.next_task(session, project, make_user(session), "demonstration")
    assert (task is not None) == served


def test_redacting_replaces_the_personal_data_in_the_prompt(session) -> None:
    project = make_project(session)
    prompt = make_prompt(
        session,
        project,
        make_user(session),
        instruction="Ask Maria Lopez at maria@example.com.",
        person_names=["Maria Lopez"],
        confirm_warnings=True,
    )
    hygiene.review_prompt(session, project, prompt.id, "redact")
    assert prompt.instruction == "Ask [NAME] at [EMAIL]."
    assert prompt.review_state == "redacted"


def test_only_held_prompts_can_be_reviewed_and_only_with_a_known_decision(session) -> None:
    project = make_project(session)
    prompt = make_prompt(session, project, make_user(session))
    with pytest.raises(InvalidInput, match="not waiting for review"):
        hygiene.review_prompt(session, project, prompt.id, "keep")
    with pytest.raises(InvalidInput, match="Decide one of keep, redact, drop"):
        hygiene.review_prompt(session, project, prompt.id, "burn")


def test_only_the_earliest_prompts_of_a_user_enter_the_queue(session) -> None:
    project = make_project(session, max_prompts_per_user=2)
    author, labeler = make_user(session), make_user(session)
    first, second, third = (make_prompt(session, project, author) for _ in range(3))

    served = set()
    while task := queue.next_task(session, project, labeler, "demonstration"):
        served.add(task.item.prompt_id)
        queue.skip_task(session, task.id, labeler, SkipIn(reason="other"))

    assert served == {first.id, second.id}
    [over] = hygiene.users_over_cap(session, project)
    assert (over.username, over.prompts, over.kept, over.first_left_out_id) == (
        author.username,
        3,
        2,
        third.id,
    )


def test_an_imported_prompt_repeating_a_stored_one_is_dropped(session) -> None:
    project = make_project(session)
    item = make_ranking_item(session, project)
    line = RankingItemIn(
        prompt=NewPromptIn(instruction=item.prompt.instruction),
        completions=[CompletionIn(text=t) for t in "abcd"],
    )
    report = imports.import_ranking_items(session, project, [(1, line)], unit="line")
    assert report.items == []
    assert report.dropped == [f"line 1: duplicate of prompt {item.prompt_id}"]
