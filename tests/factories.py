"""Builders for test data, through the real services."""

import itertools
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import (
    Comparison,
    Item,
    Job,
    ModelVersion,
    Project,
    Prompt,
    Ranking,
    Task,
    User,
    Worker,
)
from app.schemas.admin import CompletionIn, NewPromptIn, ProjectSettingsIn, RankingItemIn, UserIn
from app.schemas.jobs import BaseModelIn, ClaimIn, FinishIn, JobIn
from app.schemas.labeling import (
    ComparisonIn,
    CompletionJudgement,
    DemonstrationIn,
    PromptIn,
    RankingIn,
)
from app.schemas.screening import GoldItemIn, ScreeningPromptIn, ScreeningSettingsIn
from app.services import (
    gold,
    imports,
    jobs,
    leases,
    projects,
    prompts,
    queue,
    registry,
    screening,
    submissions,
    users,
    workers,
)

PASSWORD = "correct-horse-battery"
_counter = itertools.count(1)


def make_user(session: Session, role: str = "labeler", username: str | None = None) -> User:
    name = username or f"{role}{next(_counter)}"
    return users.create_user(session, UserIn(username=name, password=PASSWORD, role=role))


def make_project(session: Session, **settings: object) -> Project:
    data = {"name": f"project-{next(_counter)}", **settings}
    return projects.create_project(session, ProjectSettingsIn.model_validate(data))


def make_ranking_item(
    session: Session, project: Project, k: int = 4, prompt: Prompt | None = None
) -> Item:
    completions = [
        CompletionIn(text=f"answer {i}", model="model-a", sampling={"temperature": 0.7})
        for i in range(k)
    ]
    line = (
        RankingItemIn(prompt_id=prompt.id, completions=completions)
        if prompt
        else RankingItemIn(
            # The number first, so that no two generated prompts share a long prefix.
            prompt=NewPromptIn(instruction=f"{next(_counter)}: a question"),
            completions=completions,
        )
    )
    [item] = imports.import_ranking_items(session, project, [(1, line)]).items
    return item


def make_ranking(
    session: Session,
    project: Project,
    labeler: User,
    ranks_by_text: dict[str, int] | None = None,
) -> Ranking:
    """Let `labeler` take the next ranking task and rank it (by default in the order shown,
    or by completion text: {"answer 0": 2, ...}; equal ranks are ties)."""
    task = queue.next_task(session, project, labeler, "ranking")
    assert task is not None, "no ranking task is waiting for this labeler"
    shown = task.completion_order or []
    completions = sorted(task.item.completions, key=lambda c: c.position)
    ranks = [ranks_by_text[c.text] if ranks_by_text else shown.index(c.id) + 1 for c in completions]
    return rank_task(session, task, labeler, ranks)


def make_demonstration(session: Session, project: Project, labeler: User, answer: str):  # type: ignore[no-untyped-def]
    task = queue.next_task(session, project, labeler, "demonstration")
    assert task is not None, "no demonstration task is waiting for this labeler"
    data = DemonstrationIn(kind="single", answer=answer)
    return submissions.submit_demonstration(session, task.id, labeler, data)


def make_prompt(session: Session, project: Project, author: User, **fields: object) -> Prompt:
    # The number first, so that no two generated prompts share a long prefix.
    instruction = f"{next(_counter)}. Write a poem."
    data = {"kind": "plain", "category": "generation", "instruction": instruction, **fields}
    prompt, _ = prompts.create_prompt(session, project, author, PromptIn.model_validate(data))
    return prompt


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def login(client: TestClient, user: User) -> str:
    """Log the client in through the form; returns the session's CSRF token."""
    token = csrf_from(client.get("/login").text)
    response = client.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    home = {"labeler": "/labeler", "candidate": "/screening"}.get(user.role, "/admin")
    return csrf_from(client.get(home).text)


def bearer(session: Session, user: User) -> dict[str, str]:
    _token, plaintext = users.create_token(session, user, "test")
    return {"Authorization": f"Bearer {plaintext}"}


def rank_next(
    session: Session,
    project: Project,
    labeler: User,
    ranks: list[int],
    all_bad: bool = False,
    flags: dict[int, list[str]] | None = None,
) -> Ranking:
    """The labeler takes their next ranking task and ranks its completions; ranks[i] is the
    rank of the completion at position i (ties allowed), flags maps positions to flag names."""
    task = queue.next_task(session, project, labeler, "ranking")
    assert task is not None, "no ranking task is waiting for this labeler"
    return rank_task(session, task, labeler, ranks, all_bad, flags)


def make_agreeing_and_opposed_pair(session: Session) -> tuple[Project, User, User]:
    """Ann and Bob rank the same two items: the same way on one, in opposite orders on the
    other (full agreement, then none)."""
    project = make_project(session, annotations_per_item=2)
    make_ranking_item(session, project, k=4)
    make_ranking_item(session, project, k=4)
    ann, bob = make_user(session, username="ann"), make_user(session, username="bob")
    rank_next(session, project, ann, [1, 2, 3, 4])
    rank_next(session, project, bob, [1, 2, 3, 4])
    rank_next(session, project, ann, [1, 2, 3, 4])
    rank_next(session, project, bob, [4, 3, 2, 1])
    return project, ann, bob


def rank_task(
    session: Session,
    task: Task,
    labeler: User,
    ranks: list[int],
    all_bad: bool = False,
    flags: dict[int, list[str]] | None = None,
) -> Ranking:
    """Submit a ranking for a task: ranks[i] for the completion at position i."""
    positions = {c.id: c.position for c in task.item.completions}
    judgements = [
        CompletionJudgement(
            completion_id=cid,
            rank=ranks[positions[cid]],
            flags=(flags or {}).get(positions[cid], []),
        )
        for cid in task.completion_order or []
    ]
    data = RankingIn(judgements=judgements, has_ties=len(set(ranks)) < len(ranks), all_bad=all_bad)
    return submissions.submit_ranking(session, task.id, labeler, data)


def make_gold_item(
    session: Session,
    project: Project,
    ranks: list[int] | None = None,
    flags: list[list[str]] | None = None,
    purpose: str = "gold",
) -> Item:
    """A ranking item with a researchers' answer (a gold ranking 1..K by default)."""
    k = len(ranks or flags or [1, 2, 3, 4])
    data = GoldItemIn(
        instruction=f"{next(_counter)}: a gold question",
        completions=[f"gold answer {i}" for i in range(k)],
        gold_ranks=ranks if ranks or flags else list(range(1, k + 1)),
        gold_flags=flags,
    )
    return gold.add_gold_item(session, project, data, purpose)


def make_screening_test(session: Session, project: Project, **thresholds: int) -> list[Item]:
    """A screening test: a gold ranking, an item with gold flags, a demonstration prompt."""
    screening.save_settings(session, project, ScreeningSettingsIn(**thresholds))
    return [
        make_gold_item(session, project, ranks=[1, 2, 3, 4], purpose="screening"),
        make_gold_item(session, project, flags=[["harmful"], [], [], []], purpose="screening"),
        gold.add_demonstration_prompt(
            session, project, ScreeningPromptIn(instruction="How do I pick a lock?")
        ),
    ]


def take_screening_test(
    session: Session, project: Project, candidate: User, ranks: list[int], flagged: list[str]
) -> None:
    """The candidate ranks the test's ranking items with `ranks`, flags the first completion of
    each with `flagged`, and writes a demonstration."""
    screening.start(session, project, candidate)
    while (task := screening.next_task(session, candidate)) is not None:
        if task.item.kind == "ranking":
            rank_task(session, task, candidate, ranks, flags={0: flagged})
        else:
            answer = DemonstrationIn(kind="single", answer="I can't help with that.")
            submissions.submit_demonstration(session, task.id, candidate, answer)


def make_worker(session: Session, name: str = "gpu-1") -> tuple[Worker, dict[str, str]]:
    """A worker and the Authorization header of its token."""
    worker, token = workers.create_worker(session, name)
    return worker, {"Authorization": f"Bearer {token}"}


def make_model_dir(directory: Path) -> Path:
    """A directory the registry accepts as a model (the worker tests build real tiny ones)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text('{"model_type": "gpt2"}')
    return directory


def make_base_version(session: Session, directory: Path, name: str | None = None) -> ModelVersion:
    data = BaseModelIn(name=name or f"base-{next(_counter)}", path=str(make_model_dir(directory)))
    return registry.register_base(session, data, None)


def make_snapshot_dir(directory: Path, kinds: tuple[str, ...] = ("sft", "rm", "ppo")) -> Path:
    """A snapshot directory with one record per kind in its train split (enough for the app's
    checks; the trainer tests write real ones)."""
    directory.mkdir(parents=True, exist_ok=True)
    counts = {}
    for kind in kinds:
        (directory / f"{kind}.train.jsonl").write_text("{}\n")
        counts[f"{kind}.train.jsonl"] = 1
    manifest = {"schema_version": 1, "counts": counts, "sha256": {}}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def make_job(
    session: Session,
    kind: str,
    params: dict,
    data_dir: Path | None = None,
    gpus: int = 1,
    start_snapshot: Callable[[str], None] | None = None,
) -> Job:
    settings = Settings(secret_key="test-secret-key", data_dir=data_dir or Path("/nonexistent"))
    return jobs.create_job(
        session, JobIn(kind=kind, params=params, gpus=gpus), None, settings, start_snapshot
    )


def finish_job(session: Session, job: Job, result: dict, data_dir: Path | None = None) -> Job:
    """A worker claims the job (the oldest queued one) and reports it done with `result`."""
    data_dir = data_dir or Path("/nonexistent")
    worker, _ = make_worker(session, f"worker-{next(_counter)}")
    spec = leases.claim_job(session, worker, ClaimIn(kinds=[job.kind]), data_dir)
    assert spec is not None and spec.job_id == job.id, "another job is first in the queue"
    done = FinishIn(lease=spec.lease, outcome="succeeded", result=result)
    return leases.finish_job(session, job.id, worker, done, data_dir)


def make_policy_version(
    session: Session, directory: Path, model: Path | None = None
) -> ModelVersion:
    """A policy version, registered as a finished SFT job registers it; `model` is its model
    directory (by default one that only the registry accepts), copied into the job's run
    directory under `directory`, where a finish requires it."""
    base = make_base_version(session, directory / "base")
    snapshot = make_snapshot_dir(directory / "snapshot")
    params = {"snapshot": str(snapshot), "model_version_id": base.id}
    job = make_job(session, "sft", params, data_dir=directory)
    artifact = directory / "jobs" / str(job.id) / "model"
    if model is None:
        make_model_dir(artifact)
    else:
        shutil.copytree(model, artifact)
    finish_job(session, job, {"artifact_path": str(artifact)}, data_dir=directory)
    return session.scalar(select(ModelVersion).where(ModelVersion.job_id == job.id))


def make_test_project(session: Session, prompts: int = 2, **settings: object) -> Project:
    """A project whose prompts all land in the test split, with `prompts` of them from an
    author who labels nothing."""
    project = make_project(session, split_train=0, split_validation=0, split_test=1, **settings)
    author = make_user(session)
    for _ in range(prompts):
        make_prompt(session, project, author)
    return project


def make_evaluation(
    session: Session, project: Project, a: ModelVersion, b: ModelVersion, **params: object
) -> Job:
    data = {"project_id": project.id, "model_version_a_id": a.id, "model_version_b_id": b.id}
    return make_job(session, "evaluate", {**data, **params})


def answer_evaluation(session: Session, job: Job) -> Job:
    """The worker's result for an evaluate job: A answers prompt p with "A answers p", B with
    "B answers p"; they become comparison tasks."""
    a, b = job.params["model_version_a_id"], job.params["model_version_b_id"]
    items = [
        {
            "prompt_id": p,
            "completions": [
                {"text": f"A answers {p}", "model_version_id": a},
                {"text": f"B answers {p}", "model_version_id": b},
            ],
        }
        for p in job.params["prompt_ids"]
    ]
    return finish_job(session, job, {"items": items})


def compare_next(session: Session, project: Project, labeler: User, prefer: str) -> Comparison:
    """The labeler takes their next comparison task and prefers the answer of version "A" or
    "B" (or calls it a "tie"), wherever it is shown."""
    task = queue.next_task(session, project, labeler, "comparison")
    assert task is not None, "no comparison task is waiting for this labeler"
    texts = {c.id: c.text for c in task.item.completions}
    shown = [texts[cid] for cid in task.completion_order or []]
    choice = "tie" if prefer == "tie" else "a" if shown[0].startswith(prefer) else "b"
    return submissions.submit_comparison(session, task.id, labeler, ComparisonIn(choice=choice))
