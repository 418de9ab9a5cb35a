"""Storing rankings and demonstrations: validated, transactional, idempotent."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.errors import Conflict, InvalidInput, NotFound
from app.models import Demonstration, Project, Ranking, Slot, Task, User
from app.schemas.admin import ProjectSettingsIn
from app.schemas.labeling import DemonstrationIn, RankingIn, SkipIn
from app.services import projects, queue, submissions
from tests.factories import make_project, make_prompt, make_ranking_item, make_user


def ranking_for(task: Task, ranks: list[int] | None = None, **extra: object) -> RankingIn:
    order = task.completion_order
    ranks = ranks or list(range(1, len(order) + 1))
    judgements = [{"completion_id": cid, "rank": r} for cid, r in zip(order, ranks, strict=True)]
    return RankingIn.model_validate({"judgements": judgements, **extra})


@pytest.fixture
def ranking_task(session):
    project = make_project(session)
    make_ranking_item(session, project, k=4)
    labeler = make_user(session)
    return queue.next_task(session, project, labeler, "ranking"), labeler


@pytest.fixture
def demonstration_task(session):
    project = make_project(session)
    make_prompt(session, project, make_user(session), instruction="Name a colour.")
    labeler = make_user(session)
    return queue.next_task(session, project, labeler, "demonstration"), labeler


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_a_ranking_is_stored_with_ranks_flags_quality_and_time(session, ranking_task) -> None:
    task, labeler = ranking_task
    data = ranking_for(task)
    data.judgements[0].quality = 6
    data.judgements[0].flags = ["hallucination"]

    ranking = submissions.submit_ranking(session, task.id, labeler, data)

    entries = {e.completion_id: e for e in ranking.entries}
    first = entries[task.completion_order[0]]
    assert (first.rank, first.quality, first.hallucination, first.harmful) == (1, 6, True, False)
    assert sorted(e.rank for e in entries.values()) == [1, 2, 3, 4]
    assert ranking.time_spent_ms >= 0
    assert session.get(Slot, task.slot_id).state == "done"


def test_a_resubmitted_ranking_is_stored_once(session, ranking_task) -> None:
    task, labeler = ranking_task
    first = submissions.submit_ranking(session, task.id, labeler, ranking_for(task))
    again = submissions.submit_ranking(session, task.id, labeler, ranking_for(task, [4, 3, 2, 1]))

    assert again.id == first.id
    assert count(session, Ranking) == 1


def test_concurrent_copies_of_one_submission_store_one_ranking(db) -> None:
    with db.session() as session:
        project = make_project(session)
        make_ranking_item(session, project)
        labeler = make_user(session)
        task = queue.next_task(session, project, labeler, "ranking")
        data = ranking_for(task)

    def submit(_: int) -> int:
        with db.session() as s:
            return submissions.submit_ranking(s, task.id, s.get(User, labeler.id), data).id

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(submit, range(8)))

    with db.session() as session:
        assert len(ids) == 1
        assert count(session, Ranking) == 1


def test_a_ranking_that_is_not_a_permutation_is_refused() -> None:
    with pytest.raises(ValueError, match="each used once"):
        RankingIn.model_validate(
            {"judgements": [{"completion_id": 1, "rank": 1}, {"completion_id": 2, "rank": 1}]}
        )


def test_ties_are_accepted_when_stated_and_stored_as_dense_ranks(session, ranking_task) -> None:
    task, labeler = ranking_task
    ranking = submissions.submit_ranking(
        session, task.id, labeler, ranking_for(task, [1, 1, 3, 4], has_ties=True)
    )
    assert ranking.has_ties
    assert sorted(e.rank for e in ranking.entries) == [1, 1, 2, 3]


def test_a_ranking_must_cover_exactly_the_shown_completions(session, ranking_task) -> None:
    task, labeler = ranking_task
    data = ranking_for(task)
    data.judgements.pop()

    with pytest.raises(InvalidInput, match="exactly the completions shown"):
        submissions.submit_ranking(session, task.id, labeler, data)
    assert count(session, Ranking) == 0
    assert session.get(Task, task.id).state == "active"


def test_k_outside_the_project_range_is_refused(session, ranking_task) -> None:
    task, labeler = ranking_task
    projects.update_project(
        session, task.item.project_id, ProjectSettingsIn(name="narrowed", k_min=5, k_max=9)
    )
    with pytest.raises(InvalidInput, match=r"outside the project's range 5\.\.9"):
        submissions.submit_ranking(session, task.id, labeler, ranking_for(task))


def test_all_bad_with_a_better_answer_stores_a_demonstration(session, ranking_task) -> None:
    task, labeler = ranking_task
    data = ranking_for(task, all_bad=True, better_answer="The real answer.")

    ranking = submissions.submit_ranking(session, task.id, labeler, data)

    demonstration = session.scalar(select(Demonstration))
    assert ranking.all_bad
    assert demonstration.ranking_id == ranking.id
    assert demonstration.messages[-1] == {"role": "assistant", "content": "The real answer."}


def test_another_labelers_task_is_unknown(session, ranking_task) -> None:
    task, _ = ranking_task
    with pytest.raises(NotFound):
        submissions.submit_ranking(session, task.id, make_user(session), ranking_for(task))


def test_a_lease_taken_over_by_someone_else_gives_a_clear_conflict(session, ranking_task) -> None:
    task, labeler = ranking_task
    session.execute(update(Slot).values(lease_expires_at=task.served_at - timedelta(seconds=1)))
    session.commit()
    project = session.get(Project, task.item.project_id)
    assert queue.next_task(session, project, make_user(session), "ranking") is not None

    with pytest.raises(Conflict, match="lease on this task ran out"):
        submissions.submit_ranking(session, task.id, labeler, ranking_for(task))
    assert count(session, Ranking) == 0


def test_an_expired_lease_nobody_took_is_still_accepted(session, ranking_task) -> None:
    task, labeler = ranking_task
    session.execute(update(Slot).values(lease_expires_at=task.served_at - timedelta(seconds=1)))
    session.commit()

    assert submissions.submit_ranking(session, task.id, labeler, ranking_for(task)).id


def test_a_skipped_task_cannot_be_submitted(session, ranking_task) -> None:
    task, labeler = ranking_task
    queue.skip_task(session, task.id, labeler, SkipIn(reason="other"))
    with pytest.raises(Conflict, match="skipped"):
        submissions.submit_ranking(session, task.id, labeler, ranking_for(task))


def test_a_single_answer_demonstration_stores_the_conversation(session, demonstration_task) -> None:
    task, labeler = demonstration_task
    demonstration = submissions.submit_demonstration(
        session, task.id, labeler, DemonstrationIn(kind="single", answer="Blue.")
    )
    assert demonstration.messages == [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
    ]
    assert demonstration.time_spent_ms >= 0


def test_a_dialogue_demonstration_alternates_turns(session, demonstration_task) -> None:
    task, labeler = demonstration_task
    turns = [
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another?"},
        {"role": "assistant", "content": "Green."},
    ]
    demonstration = submissions.submit_demonstration(
        session, task.id, labeler, DemonstrationIn(kind="dialogue", turns=turns)
    )
    assert [m["role"] for m in demonstration.messages] == ["user", "assistant", "user", "assistant"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "single", "answer": "   "}, "answer is empty"),
        ({"kind": "single", "answer": "x" * 20_001}, "at most 20000"),
        ({"kind": "dialogue", "turns": []}, "at least one assistant turn"),
        (
            {
                "kind": "dialogue",
                "turns": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}],
            },
            "end with an assistant turn",
        ),
        ({"kind": "dialogue", "turns": [{"role": "user", "content": "a"}]}, "alternates"),
    ],
)
def test_malformed_demonstrations_are_refused(fields, message) -> None:
    with pytest.raises(ValueError, match=message):
        DemonstrationIn.model_validate(fields)


def test_a_resubmitted_demonstration_is_stored_once(session, demonstration_task) -> None:
    task, labeler = demonstration_task
    data = DemonstrationIn(kind="single", answer="Blue.")
    first = submissions.submit_demonstration(session, task.id, labeler, data)
    again = submissions.submit_demonstration(session, task.id, labeler, data)
    assert first.id == again.id
    assert count(session, Demonstration) == 1
