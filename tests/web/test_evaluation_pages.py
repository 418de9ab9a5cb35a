"""Evaluations on the web pages: admins queue evaluate jobs from the jobs form, read the win
rate on the job page and compare versions side by side; labelers compare two answers through
a plain form."""

from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.models import Comparison, Job
from tests.factories import (
    answer_evaluation,
    compare_next,
    login,
    make_base_version,
    make_evaluation,
    make_policy_version,
    make_test_project,
    make_user,
)


@pytest.fixture
def versions(session, tmp_path: Path):
    return make_policy_version(session, tmp_path / "sft"), make_policy_version(
        session, tmp_path / "ppo"
    )


@pytest.fixture
def project(session):
    return make_test_project(session, prompts=2)


@pytest.fixture
def evaluation(session, versions, project) -> Job:
    sft, ppo = versions
    job = make_evaluation(session, project, ppo, sft)
    answer_evaluation(session, job)
    return job


# --- Admins ---------------------------------------------------------------------------------------


def test_the_evaluate_form_shows_its_defaults(client, session) -> None:
    login(client, make_user(session, "admin"))
    page = client.get("/admin/jobs?kind=evaluate").text
    assert 'name="labeler_group" value="training"' in page
    assert 'name="max_prompts" value="100"' in page and 'name="model_version_a_id"' in page


def test_an_admin_queues_an_evaluate_job_from_the_form(client, session, versions, project) -> None:
    sft, ppo = versions
    csrf = login(client, make_user(session, "admin"))
    form = {"csrf_token": csrf, "kind": "evaluate", "project_id": str(project.id),
            "model_version_a_id": str(ppo.id), "model_version_b_id": str(sft.id),
            "labeler_group": "training", "max_prompts": "1"}  # fmt: skip
    response = client.post("/admin/jobs", data=form, follow_redirects=False)
    assert response.status_code == 303
    job = session.get(Job, int(response.headers["location"].rsplit("/", 1)[1]))
    assert job.kind == "evaluate" and len(job.params["prompt_ids"]) == 1


def test_a_base_model_cannot_be_evaluated_and_the_form_says_why(
    client, session, versions, project, tmp_path
) -> None:
    sft, _ppo = versions
    base = make_base_version(session, tmp_path / "base-model")
    csrf = login(client, make_user(session, "admin"))
    before = session.scalar(select(func.count()).select_from(Job))
    form = {"csrf_token": csrf, "kind": "evaluate", "project_id": str(project.id),
            "model_version_a_id": str(base.id), "model_version_b_id": str(sft.id)}  # fmt: skip
    response = client.post("/admin/jobs", data=form)
    assert response.status_code == 422
    assert f"model_version_a_id: {base.name} is a base model" in response.text
    assert session.scalar(select(func.count()).select_from(Job)) == before


def test_the_job_page_shows_the_win_rate_with_its_interval(
    client, session, evaluation, project
) -> None:
    login(client, make_user(session, "admin"))
    assert "No comparisons yet" in client.get(f"/admin/jobs/{evaluation.id}").text
    labeler = make_user(session)
    compare_next(session, project, labeler, "A")
    compare_next(session, project, labeler, "A")

    page = client.get(f"/admin/jobs/{evaluation.id}").text

    assert '<strong id="win-rate">100.0 %</strong>' in page
    assert "95 % Wilson interval 34.2 % \u2013 100.0 %" in page  # Wilson, 2 of 2
    assert "2 of 2 comparisons counted" in page


def test_the_models_page_lists_win_rates_and_compares_versions_side_by_side(
    client, session, versions, evaluation, project
) -> None:
    sft, ppo = versions
    compare_next(session, project, make_user(session), "B")
    login(client, make_user(session, "admin"))

    listing = client.get("/admin/models").text
    assert 'id="evaluations"' in listing and "100.0 %" in listing  # sft over ppo, 1 of 1

    page = client.get(f"/admin/models?compare={ppo.id}&compare={sft.id}").text
    assert 'id="side-by-side"' in page and "config: learning_rate" in page
    matrix = page.split('id="win-matrix"')[1]
    assert matrix.index("0.0 %") < matrix.index("100.0 %")  # ppo's row first: it lost


def test_comparing_one_version_says_to_choose_two(client, session, versions) -> None:
    sft, _ppo = versions
    login(client, make_user(session, "admin"))
    response = client.get(f"/admin/models?compare={sft.id}")
    assert response.status_code == 422 and "Choose at least two" in response.text


def test_labelers_cannot_see_evaluations(client, session, evaluation) -> None:
    login(client, make_user(session))
    assert client.get(f"/admin/jobs/{evaluation.id}").status_code == 403


# --- Labelers -------------------------------------------------------------------------------------


def take_comparison(client, csrf: str, project) -> str:
    response = client.post(
        f"/labeler/projects/{project.id}/next", data={"kind": "comparison", "csrf_token": csrf}
    )
    assert response.status_code == 200, response.text
    return str(response.url)


def test_a_labeler_compares_two_answers_through_the_form(
    client, session, versions, evaluation, project
) -> None:
    csrf = login(client, make_user(session))
    assert "Compare two answers (2)" in client.get("/labeler").text
    url = take_comparison(client, csrf, project)
    page = client.get(url).text
    assert "Answer A" in page and "Answer B" in page and "answers" in page
    assert all(v.name not in page for v in versions)

    response = client.post(f"{url}/comparison", data={"csrf_token": csrf, "choice": "tie"})

    assert response.status_code == 200 and "Choice saved." in response.text
    stored = session.scalar(select(Comparison))
    assert stored.winner_id is None


def test_submitting_without_a_choice_says_what_to_do(client, session, evaluation, project) -> None:
    csrf = login(client, make_user(session))
    url = take_comparison(client, csrf, project)
    response = client.post(f"{url}/comparison", data={"csrf_token": csrf})
    assert response.status_code == 422 and "Choose answer A, answer B or a tie" in response.text
    assert session.scalar(select(func.count()).select_from(Comparison)) == 0


def test_a_comparison_without_the_csrf_token_is_refused(
    client, session, evaluation, project
) -> None:
    csrf = login(client, make_user(session))
    url = take_comparison(client, csrf, project)
    assert client.post(f"{url}/comparison", data={"choice": "a"}).status_code == 403
