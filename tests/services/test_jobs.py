"""Creating jobs: parameters validated per kind with the trainer's defaults, references checked;
bad input gets a clear message and creates nothing. Cancel and retry."""

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.errors import Conflict, InvalidInput
from app.models import Job, ModelVersion
from app.schemas.jobs import REFERENCES
from app.services import jobs
from tests.factories import (
    make_base_version,
    make_job,
    make_model_dir,
    make_project,
    make_prompt,
    make_snapshot_dir,
    make_user,
)


@pytest.fixture
def base(session, tmp_path: Path):
    return make_base_version(session, tmp_path / "base")


@pytest.fixture
def snapshot(tmp_path: Path) -> str:
    return str(make_snapshot_dir(tmp_path / "snap"))


def job_count(session) -> int:
    return session.scalar(select(func.count()).select_from(Job))


@pytest.mark.parametrize("kind", ["sft", "rm", "ppo"])
def test_training_defaults_are_the_trainers(kind: str) -> None:
    config = pytest.importorskip("trainer.config")
    trainer_defaults = dataclasses.asdict(config.CONFIGS[kind]())
    for name, default in jobs.default_params(kind).items():
        if name not in REFERENCES:
            assert trainer_defaults[name] == default, name


def test_an_sft_job_gets_the_defaults_it_was_not_given(session, base, snapshot) -> None:
    job = make_job(session, "sft", {"snapshot": snapshot, "model_version_id": base.id, "epochs": 2})
    assert job.state == "queued"
    assert job.params["epochs"] == 2 and job.params["learning_rate"] == 1e-5


def test_a_snapshot_id_names_a_directory_under_data_dir_exports(session, base, tmp_path) -> None:
    make_snapshot_dir(tmp_path / "var" / "exports" / "snap-7")
    params = {"snapshot": "snap-7", "model_version_id": base.id}
    job = make_job(session, "rm", params, data_dir=tmp_path / "var")
    assert job.params["snapshot"] == "snap-7"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"model_version_id": 999}, "there is no model version 999"),
        ({"learning_rate": 5}, "learning_rate: Input should be less than or equal to 1"),
        ({"epochs": 0}, "epochs: Input should be greater than or equal to 1"),
        ({"warp_speed": 9}, "warp_speed: Extra inputs are not permitted"),
        ({"snapshot": "/nowhere"}, "not an export snapshot"),
    ],
)
def test_bad_training_parameters_are_refused_and_nothing_is_created(
    session, base, snapshot, params, message
) -> None:
    with pytest.raises(InvalidInput, match=message):
        make_job(session, "sft", {"snapshot": snapshot, "model_version_id": base.id, **params})
    assert job_count(session) == 0


def test_a_snapshot_without_the_files_a_stage_needs_is_refused(session, base, tmp_path) -> None:
    only_sft = str(make_snapshot_dir(tmp_path / "sft-only", kinds=("sft",)))
    with pytest.raises(InvalidInput, match=r"no rm records in its train split \(rm.train.jsonl\)"):
        make_job(session, "rm", {"snapshot": only_sft, "model_version_id": base.id})
    assert job_count(session) == 0


def test_ppo_needs_a_reward_model_and_ptx_needs_demonstrations(
    session, base, tmp_path, snapshot
) -> None:
    reward = ModelVersion(
        name="rm", kind="reward", artifact_path=str(make_model_dir(tmp_path / "rm"))
    )
    session.add(reward)
    session.commit()
    with pytest.raises(InvalidInput, match="is not a reward model"):
        make_job(
            session,
            "ppo",
            {"snapshot": snapshot, "model_version_id": base.id, "reward_model_version_id": base.id},
        )
    no_sft = str(make_snapshot_dir(tmp_path / "ppo-only", kinds=("ppo",)))
    params = {"snapshot": no_sft, "model_version_id": base.id, "reward_model_version_id": reward.id}
    make_job(session, "ppo", params)  # plain PPO reads the prompts only
    with pytest.raises(InvalidInput, match="no sft records"):
        make_job(session, "ppo", {**params, "ptx_coef": 0.5})
    with pytest.raises(InvalidInput, match="reward_model_version_id: Field required"):
        make_job(session, "ppo", {"snapshot": snapshot, "model_version_id": base.id})


def test_a_sample_job_checks_its_project_prompts_k_and_model_versions(session, base) -> None:
    project = make_project(session)
    prompt = make_prompt(session, project, make_user(session))
    good = {"project_id": project.id, "prompt_ids": [prompt.id], "model_version_ids": [base.id]}
    assert make_job(session, "sample", good).params["k"] == 4
    for bad, message in [
        ({"k": 3}, "k: Input should be greater than or equal to 4"),
        ({"prompt_ids": [prompt.id, 12345]}, "no prompt 12345"),
        ({"model_version_ids": [777]}, "there is no model version 777"),
        ({"project_id": 4242}, "there is no project 4242"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            make_job(session, "sample", {**good, **bad})
    assert job_count(session) == 1


def test_a_sample_job_without_prompt_ids_answers_the_oldest_train_split_prompts(
    session, base
) -> None:
    """The web form's admin sees no prompt ids: by default a sample job takes the project's
    train-split prompts, oldest first, at most max_prompts, fixed when the job is created."""
    project = make_project(session, split_train=1, split_validation=0, split_test=0)
    trainer = make_user(session)
    train = [make_prompt(session, project, trainer) for _ in range(3)]
    project.split_train, project.split_test = 0, 1  # the next author goes to the test split
    make_prompt(session, project, make_user(session))
    params = {"project_id": project.id, "model_version_ids": [base.id], "max_prompts": 2}

    job = make_job(session, "sample", params)

    assert job.params["prompt_ids"] == [train[0].id, train[1].id]


def test_a_sample_job_without_prompt_ids_needs_train_split_prompts(session, base) -> None:
    project = make_project(session, split_train=0, split_validation=0, split_test=1)
    make_prompt(session, project, make_user(session))
    with pytest.raises(InvalidInput, match="has no train-split prompts to sample for"):
        make_job(session, "sample", {"project_id": project.id, "model_version_ids": [base.id]})
    assert job_count(session) == 0


def test_k_must_fit_the_projects_range(session, base) -> None:
    project = make_project(session, k_min=4, k_max=5)
    prompt = make_prompt(session, project, make_user(session))
    params = {
        "project_id": project.id,
        "prompt_ids": [prompt.id],
        "model_version_ids": [base.id],
        "k": 7,
    }
    with pytest.raises(InvalidInput, match=r"outside the project's range 4\.\.5"):
        make_job(session, "sample", params)


def test_cancel_ends_a_queued_job_and_retry_queues_a_copy(
    session, base, snapshot, tmp_path
) -> None:
    job = make_job(session, "sft", {"snapshot": snapshot, "model_version_id": base.id})
    with pytest.raises(Conflict, match="only failed or cancelled"):
        jobs.retry_job(session, job.id, None, tmp_path)
    assert jobs.cancel_job(session, job.id).state == "cancelled"
    with pytest.raises(Conflict, match="already cancelled"):
        jobs.cancel_job(session, job.id)
    retry = jobs.retry_job(session, job.id, None, tmp_path)
    assert (retry.state, retry.params) == ("queued", job.params)
