"""Dialogue suggestions: the project's model (the admin's choice, else the newest policy)
answers through a small suggest job that workers claim first; a clear message when no model
or no worker can answer; the stored demonstration records the suggestions it kept."""

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.errors import InvalidInput
from app.models import Job, ModelVersion
from app.models.base import utcnow
from app.schemas.jobs import ClaimIn, FinishIn
from app.schemas.labeling import DemonstrationIn, SuggestIn
from app.services import leases, queue, submissions, suggestions
from tests.factories import (
    make_base_version,
    make_job,
    make_model_dir,
    make_project,
    make_prompt,
    make_snapshot_dir,
    make_user,
    make_worker,
)


@pytest.fixture
def project(session):
    project = make_project(session)
    make_prompt(session, project, make_user(session))
    return project


@pytest.fixture
def labeler(session):
    return make_user(session)


@pytest.fixture
def task(session, project, labeler):
    return queue.next_task(session, project, labeler, "demonstration")


@pytest.fixture
def worker(session):
    worker, _headers = make_worker(session)
    worker.last_seen_at = utcnow()
    session.commit()
    return worker


def add_policy(session, tmp_path: Path, name: str) -> ModelVersion:
    version = ModelVersion(
        name=name, kind="policy", artifact_path=str(make_model_dir(tmp_path / name))
    )
    session.add(version)
    session.commit()
    return version


def ask(session, task, labeler, turns=None, turn: int = 0) -> Job:
    data = SuggestIn(turns=turns or [{"role": "assistant", "content": ""}], turn=turn)
    return suggestions.request_suggestion(session, task.id, labeler, data)


def answer(session, worker, tmp_path: Path, text: str) -> Job:
    spec = leases.claim_job(session, worker, ClaimIn(), tmp_path)
    finish = FinishIn(lease=spec.lease, outcome="succeeded", result={"text": text})
    return leases.finish_job(session, spec.job_id, worker, finish, tmp_path)


def jobs_count(session) -> int:
    return session.scalar(select(func.count()).select_from(Job))


def test_the_newest_policy_suggests_unless_an_admin_chose_another_model(
    session, project, tmp_path
) -> None:
    assert suggestions.suggestion_model(session, project) is None
    add_policy(session, tmp_path, "sft-1")
    newest = add_policy(session, tmp_path, "sft-2")
    assert suggestions.suggestion_model(session, project) == newest
    base = make_base_version(session, tmp_path / "base")
    suggestions.choose_model(session, project.id, base.id)
    assert suggestions.suggestion_model(session, project) == base


def test_a_reward_model_cannot_be_chosen(session, project, tmp_path) -> None:
    reward = ModelVersion(name="rm", kind="reward", artifact_path=str(tmp_path))
    session.add(reward)
    session.commit()
    with pytest.raises(InvalidInput, match="is a reward model"):
        suggestions.choose_model(session, project.id, reward.id)


def test_without_a_model_the_labeler_is_told_and_nothing_is_queued(
    session, task, labeler, worker
) -> None:
    with pytest.raises(InvalidInput, match="No model can suggest yet"):
        ask(session, task, labeler)
    assert jobs_count(session) == 0


def test_without_a_running_worker_the_labeler_is_told_and_nothing_is_queued(
    session, task, labeler, tmp_path
) -> None:
    add_policy(session, tmp_path, "sft")
    stale, _headers = make_worker(session)
    stale.last_seen_at = utcnow() - suggestions.WORKER_SEEN - timedelta(seconds=1)
    session.commit()
    with pytest.raises(InvalidInput, match="No worker is running"):
        ask(session, task, labeler)
    assert jobs_count(session) == 0


def test_a_suggestion_continues_the_dialogue_written_so_far(
    session, task, labeler, worker, tmp_path
) -> None:
    policy = add_policy(session, tmp_path, "sft")
    turns = [
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "Shorter, please."},
        {"role": "assistant", "content": ""},
    ]
    job = ask(session, task, labeler, turns, turn=2)
    assert (job.kind, job.state, job.created_by_id) == ("suggest", "queued", labeler.id)
    assert job.params["model_version_id"] == policy.id and job.params["turn"] == 2
    assert job.params["messages"] == [*task.item.prompt.messages(), *turns[:2]]


@pytest.mark.parametrize(
    ("turns", "turn", "message"),
    [
        ([{"role": "assistant", "content": "a"}, {"role": "user", "content": "u"}], 1,
         "for the assistant's turns"),
        ([{"role": "assistant", "content": ""}, {"role": "user", "content": "u"},
          {"role": "assistant", "content": ""}], 2, "Write turn 1 first"),
    ],
)  # fmt: skip
def test_a_suggestion_for_a_user_turn_or_after_an_empty_turn_is_refused(
    session, task, labeler, worker, tmp_path, turns, turn, message
) -> None:
    add_policy(session, tmp_path, "sft")
    with pytest.raises(InvalidInput, match=message):
        ask(session, task, labeler, turns, turn)


def test_workers_claim_suggestions_before_older_training_jobs(
    session, task, labeler, worker, tmp_path
) -> None:
    policy = add_policy(session, tmp_path, "sft")
    snapshot = str(make_snapshot_dir(tmp_path / "snap"))
    make_job(session, "sft", {"snapshot": snapshot, "model_version_id": policy.id})
    job = ask(session, task, labeler)
    spec = leases.claim_job(session, worker, ClaimIn(), tmp_path)
    assert (spec.job_id, spec.kind) == (job.id, "suggest")
    assert spec.model == policy.artifact_path and spec.params["messages"]


def test_a_written_suggestion_is_ready_for_the_labeler_who_asked(
    session, task, labeler, worker, tmp_path
) -> None:
    add_policy(session, tmp_path, "sft")
    job = ask(session, task, labeler)
    assert suggestions.get_suggestion(session, task.id, job.id, labeler).state == "generating"
    answer(session, worker, tmp_path, "A suggested answer.")
    shown = suggestions.get_suggestion(session, task.id, job.id, labeler)
    assert (shown.state, shown.text) == ("ready", "A suggested answer.")


def test_a_suggestion_nobody_claims_in_time_is_given_up(
    session, task, labeler, worker, tmp_path
) -> None:
    add_policy(session, tmp_path, "sft")
    job = ask(session, task, labeler)
    later = utcnow() + suggestions.SUGGEST_WAIT + timedelta(seconds=1)
    shown = suggestions.get_suggestion(session, task.id, job.id, labeler, later)
    assert shown.state == "unavailable" and "No worker was free" in shown.message
    assert leases.claim_job(session, worker, ClaimIn(), tmp_path, later) is None
    session.refresh(job)
    assert job.state == "cancelled"


def test_another_labeler_cannot_see_the_suggestion(
    session, task, labeler, worker, tmp_path
) -> None:
    add_policy(session, tmp_path, "sft")
    job = ask(session, task, labeler)
    with pytest.raises(Exception, match=f"no suggestion {job.id}"):
        suggestions.get_suggestion(session, task.id, job.id, make_user(session))


def test_the_demonstration_records_the_suggestions_it_kept_and_whether_they_were_edited(
    session, task, labeler, worker, tmp_path
) -> None:
    policy = add_policy(session, tmp_path, "sft")
    first = ask(session, task, labeler)
    answer(session, worker, tmp_path, "Suggested first.")
    turns = [
        {"role": "assistant", "content": "Suggested first."},
        {"role": "user", "content": "And then?"},
        {"role": "assistant", "content": ""},
    ]
    second = ask(session, task, labeler, turns, turn=2)
    answer(session, worker, tmp_path, "Suggested second.")
    turns[2]["content"] = "Suggested second, edited."
    data = DemonstrationIn(
        kind="dialogue",
        turns=turns,
        suggestions=[{"turn": 0, "job_id": first.id}, {"turn": 2, "job_id": second.id}],
    )

    demonstration = submissions.submit_demonstration(session, task.id, labeler, data)

    assert demonstration.suggestions == [
        {"turn": 0, "job_id": first.id, "model_version_id": policy.id, "edited": False},
        {"turn": 2, "job_id": second.id, "model_version_id": policy.id, "edited": True},
    ]


def test_a_suggestion_claimed_for_another_turn_is_refused(
    session, task, labeler, worker, tmp_path
) -> None:
    add_policy(session, tmp_path, "sft")
    job = ask(session, task, labeler)
    answer(session, worker, tmp_path, "Suggested.")
    turns = [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"},
             {"role": "assistant", "content": "Suggested."}]  # fmt: skip
    data = DemonstrationIn(
        kind="dialogue", turns=turns, suggestions=[{"turn": 2, "job_id": job.id}]
    )
    with pytest.raises(InvalidInput, match="written for another turn"):
        submissions.submit_demonstration(session, task.id, labeler, data)
    assert task.state == "active"
