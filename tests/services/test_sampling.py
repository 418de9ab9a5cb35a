"""A sample job's result: K completions per prompt enter the ranking queue, or, when the result
does not check out, it is refused with where the problem is and nothing is queued."""

from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.errors import InvalidInput
from app.models import Item, Job
from tests.factories import (
    finish_job,
    make_base_version,
    make_job,
    make_project,
    make_prompt,
    make_user,
)


@pytest.fixture
def job(session, tmp_path: Path) -> Job:
    project = make_project(session)
    prompt = make_prompt(session, project, make_user(session))
    base = make_base_version(session, tmp_path / "base")
    params = {"project_id": project.id, "prompt_ids": [prompt.id], "model_version_ids": [base.id]}
    return make_job(session, "sample", params)


def result(job: Job, texts: list[str]) -> dict:
    [prompt_id], [version_id] = job.params["prompt_ids"], job.params["model_version_ids"]
    completions = [{"text": t, "model_version_id": version_id} for t in texts]
    return {"items": [{"prompt_id": prompt_id, "completions": completions}]}


def ranking_items(session) -> int:
    return session.scalar(select(func.count()).where(Item.kind == "ranking"))


def test_the_completions_enter_the_ranking_queue(session, job) -> None:
    finish_job(session, job, result(job, ["one", "two", "three", "four"]))
    assert ranking_items(session) == 1


def test_a_completion_with_a_control_character_is_refused_with_where_it_is(session, job) -> None:
    # A tiny byte-level model wrote this one; it used to end the request with a server error.
    texts = ["one", "two", "anz no\ufffd\x16 A", "four"]
    with pytest.raises(InvalidInput, match=r"items\.0\.completions\.2\.text: .*U\+0016"):
        finish_job(session, job, result(job, texts))
    session.rollback()
    assert ranking_items(session) == 0
    assert session.get(Job, job.id).state == "running"
