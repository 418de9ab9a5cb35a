"""/api/v1 for evaluations: admins create evaluate jobs and read win rates; labelers take
comparison tasks and choose A, B or a tie."""

from pathlib import Path

import pytest

from tests.factories import (
    answer_evaluation,
    bearer,
    compare_next,
    make_evaluation,
    make_policy_version,
    make_test_project,
    make_user,
)


@pytest.fixture
def admin(session):
    return bearer(session, make_user(session, "admin"))


@pytest.fixture
def versions(session, tmp_path: Path):
    return make_policy_version(session, tmp_path / "sft"), make_policy_version(
        session, tmp_path / "ppo"
    )


@pytest.fixture
def project(session):
    return make_test_project(session, prompts=2)


def test_an_admin_creates_an_evaluate_job(client, admin, versions, project) -> None:
    sft, ppo = versions
    params = {"project_id": project.id, "model_version_a_id": ppo.id, "model_version_b_id": sft.id}
    response = client.post(
        "/api/v1/jobs", json={"kind": "evaluate", "params": params}, headers=admin
    )
    assert response.status_code == 201, response.text
    assert (
        response.json()["kind"] == "evaluate" and len(response.json()["params"]["prompt_ids"]) == 2
    )


def test_the_same_version_twice_gets_a_clear_message(client, admin, versions, project) -> None:
    sft, _ppo = versions
    params = {"project_id": project.id, "model_version_a_id": sft.id, "model_version_b_id": sft.id}
    response = client.post(
        "/api/v1/jobs", json={"kind": "evaluate", "params": params}, headers=admin
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("model_version_b_id: the same version as A")


def test_a_labeler_compares_two_answers_without_seeing_their_source(
    client, session, versions, project
) -> None:
    sft, ppo = versions
    answer_evaluation(session, make_evaluation(session, project, ppo, sft))
    labeler = bearer(session, make_user(session))

    task = client.post(
        f"/api/v1/projects/{project.id}/tasks/next?kind=comparison", headers=labeler
    ).json()
    assert task["kind"] == "comparison" and len(task["completions"]) == 2
    assert sft.name not in str(task) and ppo.name not in str(task)

    chosen = client.post(
        f"/api/v1/tasks/{task['id']}/comparison", json={"choice": "b"}, headers=labeler
    )
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["winner_id"] == task["completions"][1]["id"]
    again = client.post(
        f"/api/v1/tasks/{task['id']}/comparison", json={"choice": "a"}, headers=labeler
    )
    assert again.json() == chosen.json()


def test_a_choice_other_than_a_b_or_tie_is_refused(client, session, versions, project) -> None:
    sft, ppo = versions
    answer_evaluation(session, make_evaluation(session, project, ppo, sft))
    labeler = bearer(session, make_user(session))
    task = client.post(
        f"/api/v1/projects/{project.id}/tasks/next?kind=comparison", headers=labeler
    ).json()
    response = client.post(
        f"/api/v1/tasks/{task['id']}/comparison", json={"choice": "both"}, headers=labeler
    )
    assert response.status_code == 422


def test_the_evaluation_endpoint_gives_the_win_rate_with_its_interval(
    client, session, admin, versions, project
) -> None:
    sft, ppo = versions
    job = make_evaluation(session, project, ppo, sft)
    answer_evaluation(session, job)
    labeler = make_user(session)
    compare_next(session, project, labeler, "A")
    compare_next(session, project, labeler, "tie")

    body = client.get(f"/api/v1/jobs/{job.id}/evaluation", headers=admin).json()

    assert (body["pairs"], body["wanted"], body["labeler_group"]) == (2, 2, "training")
    rate = body["win_rate"]
    assert (rate["wins"], rate["ties"], rate["losses"], rate["comparisons"]) == (1, 1, 0, 2)
    assert rate["rate"] == 0.75 and 0 < rate["low"] < 0.75 < rate["high"] <= 1


def test_versions_compared_side_by_side_carry_their_win_rates(
    client, session, admin, versions, project
) -> None:
    sft, ppo = versions
    answer_evaluation(session, make_evaluation(session, project, ppo, sft))
    compare_next(session, project, make_user(session), "A")

    body = client.get(
        f"/api/v1/model-versions/compare?ids={ppo.id}&ids={sft.id}", headers=admin
    ).json()

    assert [v["id"] for v in body["versions"]] == [ppo.id, sft.id]
    [pair] = body["win_rates"]
    assert (pair["model_version_a_id"], pair["model_version_b_id"]) == (sft.id, ppo.id)
    assert pair["win_rate"]["losses"] == 1 and pair["win_rate"]["rate"] == 0.0


def test_comparing_fewer_than_two_versions_is_refused(client, admin, versions) -> None:
    sft, _ppo = versions
    response = client.get(f"/api/v1/model-versions/compare?ids={sft.id}", headers=admin)
    assert response.status_code == 422 and "at least two" in response.json()["detail"]


def test_evaluations_are_for_admins(client, session, versions, project) -> None:
    sft, ppo = versions
    job = make_evaluation(session, project, ppo, sft)
    labeler = bearer(session, make_user(session))
    assert client.get(f"/api/v1/jobs/{job.id}/evaluation", headers=labeler).status_code == 403
