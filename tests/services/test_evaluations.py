"""Evaluate jobs: two policy versions answer the project's test-split prompts, the answers
become comparison tasks for one labeler group (source hidden, per-labeler order), and the
choices give A's win rate over B with a 95 % Wilson interval (ties count half)."""

from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.errors import Conflict, InvalidInput
from app.models import Comparison, Item, Job, Prompt, Slot
from app.schemas.labeling import ComparisonIn, SkipIn
from app.services import evaluations, groups, queue, submissions
from app.services.evaluations import WinRate, wilson_interval, win_rate
from tests.factories import (
    answer_evaluation,
    compare_next,
    finish_job,
    make_base_version,
    make_evaluation,
    make_job,
    make_policy_version,
    make_project,
    make_prompt,
    make_ranking_item,
    make_test_project,
    make_user,
)


@pytest.fixture
def sft(session, tmp_path: Path):
    return make_policy_version(session, tmp_path / "sft")


@pytest.fixture
def ppo(session, tmp_path: Path):
    return make_policy_version(session, tmp_path / "ppo")


@pytest.fixture
def project(session):
    return make_test_project(session, prompts=2)


@pytest.fixture
def labeler(session):
    return make_user(session)


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


# --- The interval -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "n", "low", "high"),
    [
        (0.0, 10, 0.0, 0.2775),  # Newcombe (1998), method 3
        (0.8, 10, 0.4902, 0.9433),
        (1.0, 5, 0.5655, 1.0),
        (0.5, 100, 0.4038, 0.5962),
    ],
)
def test_the_wilson_interval_matches_published_values(score, n, low, high) -> None:
    assert wilson_interval(score, n) == pytest.approx((low, high), abs=5e-5)


def test_a_tie_counts_as_half_a_win() -> None:
    rate = win_rate(wins=3, ties=2, losses=5)
    assert rate.rate == pytest.approx(0.4)
    assert (rate.low, rate.high) == pytest.approx(wilson_interval(0.4, 10))


def test_without_comparisons_there_is_no_rate() -> None:
    assert win_rate(0, 0, 0) == WinRate(0, 0, 0, None, None, None)


def test_seen_from_the_other_version_the_rate_and_interval_flip() -> None:
    flipped = win_rate(7, 1, 2).flipped()
    expected = win_rate(2, 1, 7)
    assert (flipped.wins, flipped.ties, flipped.losses) == (2, 1, 7)
    assert (flipped.rate, flipped.low, flipped.high) == pytest.approx(
        (expected.rate, expected.low, expected.high)
    )


# --- Creating the job ---------------------------------------------------------------------------


def test_the_job_fixes_the_projects_test_split_prompts_when_created(
    session, sft, ppo, labeler
) -> None:
    project = make_test_project(session, prompts=3)
    job = make_evaluation(session, project, ppo, sft, max_prompts=2)
    expected = session.scalars(select(Prompt.id).where(Prompt.project_id == project.id)).all()
    assert job.params["prompt_ids"] == sorted(expected)[:2]
    assert (job.params["labeler_group"], job.params["annotations_per_prompt"]) == ("training", 1)


def test_prompts_outside_the_test_split_are_refused(session, sft, ppo, labeler) -> None:
    project = make_project(session, split_train=1, split_validation=0, split_test=0)
    prompt = make_prompt(session, project, make_user(session))
    with pytest.raises(InvalidInput, match=f"prompt_ids: {prompt.id} is not a usable test-split"):
        make_evaluation(session, project, ppo, sft, prompt_ids=[prompt.id])
    with pytest.raises(InvalidInput, match="has no test-split prompts to evaluate on"):
        make_evaluation(session, project, ppo, sft)
    assert count(session, Job) == 2  # the two SFT jobs that made the versions


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_version_b_id": 999}, "model_version_b_id: there is no model version 999"),
        ({"model_version_b_id": "A"}, "model_version_b_id: the same version as A"),
        ({"model_version_a_id": "base"}, "model_version_a_id: .* is a base model"),
        ({"labeler_group": "held_out"}, "there are no active held_out labelers"),
        ({"labeler_group": "everyone"}, "labeler_group: Input should be 'training' or"),
        ({"annotations_per_prompt": 0}, "annotations_per_prompt: Input should be greater"),
        ({"project_id": 4242}, "project_id: there is no project 4242"),
    ],
)
def test_bad_evaluations_are_refused_and_nothing_is_created(
    session, sft, ppo, project, labeler, tmp_path, change, message
) -> None:
    base = make_base_version(session, tmp_path / "base-model")
    references = {"A": ppo.id, "base": base.id}
    params = {
        "project_id": project.id,
        "model_version_a_id": ppo.id,
        "model_version_b_id": sft.id,
        **{k: references.get(v, v) for k, v in change.items()},
    }
    before = count(session, Job)
    with pytest.raises(InvalidInput, match=message):
        make_job(session, "evaluate", params)
    assert count(session, Job) == before


# --- The worker's result becomes comparison tasks -------------------------------------------------


def test_each_answered_prompt_becomes_a_comparison_item_with_both_sources(
    session, sft, ppo, project, labeler
) -> None:
    job = make_evaluation(session, project, ppo, sft, annotations_per_prompt=2)

    answer_evaluation(session, job)

    items = session.scalars(select(Item).where(Item.kind == "comparison")).all()
    assert sorted(i.prompt_id for i in items) == job.params["prompt_ids"]
    for item in items:
        assert (item.job_id, item.labeler_group) == (job.id, "training")
        assert [c.model_version_id for c in item.completions] == [ppo.id, sft.id]
        assert item.completions[0].model_name == f"{ppo.name} (v{ppo.id})"
        assert item.completions[0].sampling["job_id"] == job.id
        slots = session.scalar(select(func.count()).where(Slot.item_id == item.id))
        assert slots == 2


def test_a_result_that_does_not_match_the_job_is_refused_whole(
    session, sft, ppo, project, labeler
) -> None:
    job = make_evaluation(session, project, ppo, sft)
    first, second = job.params["prompt_ids"]
    answer = {"text": "x", "model_version_id": ppo.id}
    result = {
        "items": [
            {"prompt_id": first, "completions": [answer, {**answer, "model_version_id": sft.id}]},
            {"prompt_id": second, "completions": [answer, answer]},
        ]
    }
    with pytest.raises(InvalidInput, match="result item 2: expected one answer from each"):
        finish_job(session, job, result)
    session.rollback()
    assert session.scalar(select(func.count()).where(Item.kind == "comparison")) == 0
    assert session.get(Job, job.id).state == "running"


def test_an_answer_with_a_control_character_is_refused_with_where_it_is(
    session, sft, ppo, project
) -> None:
    job = make_evaluation(session, project, ppo, sft)
    items = [
        {
            "prompt_id": p,
            "completions": [
                {"text": "fine", "model_version_id": ppo.id},
                {"text": "bell\x07", "model_version_id": sft.id},
            ],
        }
        for p in job.params["prompt_ids"]
    ]
    with pytest.raises(InvalidInput, match=r"items\.0\.completions\.1\.text: .*U\+0007"):
        finish_job(session, job, {"items": items})
    session.rollback()
    assert session.scalar(select(func.count()).where(Item.kind == "comparison")) == 0


# --- Labelers compare -----------------------------------------------------------------------------


def test_comparisons_go_only_to_labelers_of_the_jobs_group(session, sft, ppo, project) -> None:
    training, held_out = make_user(session), make_user(session)
    groups.set_group(session, held_out.id, "held_out")
    answer_evaluation(
        session, make_evaluation(session, project, ppo, sft, labeler_group="held_out")
    )

    assert queue.waiting_counts(session, project.id, training.id)["comparison"] == 0
    assert queue.next_task(session, project, training, "comparison") is None
    assert queue.next_task(session, project, held_out, "comparison") is not None


def test_nobody_compares_answers_to_their_own_prompt(session, sft, ppo, labeler) -> None:
    project = make_project(session, split_train=0, split_validation=0, split_test=1)
    make_prompt(session, project, labeler)
    answer_evaluation(session, make_evaluation(session, project, ppo, sft))

    assert queue.next_task(session, project, labeler, "comparison") is None
    assert queue.next_task(session, project, make_user(session), "comparison") is not None


def test_a_labeler_sees_the_two_answers_in_their_own_order_and_not_their_source(
    session, sft, ppo, project, labeler
) -> None:
    answer_evaluation(session, make_evaluation(session, project, ppo, sft))
    task = queue.next_task(session, project, labeler, "comparison")

    view = queue.task_view(session, task)

    texts = {c.id: c.text for c in task.item.completions}
    assert sorted(task.completion_order) == sorted(texts)
    assert view.completions == [(cid, texts[cid]) for cid in task.completion_order]


def test_a_and_b_name_the_answers_in_the_order_the_labeler_saw_them(
    session, sft, ppo, project, labeler
) -> None:
    answer_evaluation(session, make_evaluation(session, project, ppo, sft))
    task = queue.next_task(session, project, labeler, "comparison")

    stored = submissions.submit_comparison(session, task.id, labeler, ComparisonIn(choice="b"))

    assert stored.winner_id == task.completion_order[1]
    assert task.state == "submitted"


def test_submitting_a_comparison_twice_stores_it_once(session, sft, ppo, project, labeler) -> None:
    answer_evaluation(session, make_evaluation(session, project, ppo, sft))
    task = queue.next_task(session, project, labeler, "comparison")

    first = submissions.submit_comparison(session, task.id, labeler, ComparisonIn(choice="tie"))
    again = submissions.submit_comparison(session, task.id, labeler, ComparisonIn(choice="a"))

    assert again.id == first.id and again.winner_id is None
    assert count(session, Comparison) == 1


def test_a_skipped_comparison_goes_to_someone_else(session, sft, ppo, labeler) -> None:
    project = make_test_project(session, prompts=1)
    answer_evaluation(session, make_evaluation(session, project, ppo, sft))
    task = queue.next_task(session, project, labeler, "comparison")

    queue.skip_task(session, task.id, labeler, SkipIn(reason="intent_unclear"))

    with pytest.raises(Conflict, match="You skipped this task"):
        submissions.submit_comparison(session, task.id, labeler, ComparisonIn(choice="a"))
    assert queue.next_task(session, project, make_user(session), "comparison") is not None


def test_a_ranking_task_cannot_be_answered_with_a_comparison(session, labeler) -> None:
    project = make_project(session)
    make_ranking_item(session, project)
    task = queue.next_task(session, project, labeler, "ranking")
    with pytest.raises(InvalidInput, match="asks for a ranking, not a comparison"):
        submissions.submit_comparison(session, task.id, labeler, ComparisonIn(choice="a"))


# --- Win rates ------------------------------------------------------------------------------------


def test_the_jobs_win_rate_counts_each_labelers_choice(session, sft, ppo, project) -> None:
    job = make_evaluation(session, project, ppo, sft, annotations_per_prompt=2)
    answer_evaluation(session, job)
    ann, bob = make_user(session), make_user(session)
    for labeler, choices in ((ann, ["A", "A"]), (bob, ["tie", "B"])):
        for prefer in choices:
            compare_next(session, project, labeler, prefer)

    evaluation = evaluations.job_evaluation(session, job)

    assert (evaluation.pairs, evaluation.wanted) == (2, 4)
    assert (evaluation.result.wins, evaluation.result.ties, evaluation.result.losses) == (2, 1, 1)
    assert evaluation.result.rate == pytest.approx(0.625)
    assert (evaluation.result.low, evaluation.result.high) == pytest.approx(
        wilson_interval(0.625, 4)
    )


def test_version_win_rates_add_up_evaluations_in_either_order(session, sft, ppo) -> None:
    project = make_test_project(session, prompts=1)
    labeler = make_user(session)
    answer_evaluation(session, make_evaluation(session, project, ppo, sft))
    compare_next(session, project, labeler, "A")  # ppo preferred
    answer_evaluation(session, make_evaluation(session, project, sft, ppo))
    compare_next(session, project, labeler, "B")  # ppo preferred again

    [pair] = evaluations.version_win_rates(session)

    assert (pair.a, pair.b) == (sft.id, ppo.id)
    assert (pair.result.wins, pair.result.ties, pair.result.losses) == (0, 0, 2)
    matrix = evaluations.win_rate_matrix(session, [ppo.id, sft.id])
    assert matrix[(ppo.id, sft.id)].rate == 1.0 and matrix[(sft.id, ppo.id)].rate == 0.0
