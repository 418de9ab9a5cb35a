"""Builders for test data, through the real services."""

import itertools
import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Item, Project, Prompt, Ranking, User
from app.schemas.admin import CompletionIn, NewPromptIn, ProjectSettingsIn, RankingItemIn, UserIn
from app.schemas.labeling import DemonstrationIn, PromptIn, RankingIn
from app.services import imports, projects, prompts, queue, submissions, users

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
            prompt=NewPromptIn(instruction=f"question {next(_counter)}"), completions=completions
        )
    )
    [item] = imports.import_ranking_items(session, project, [(1, line)])
    return item


def make_ranking(
    session: Session,
    project: Project,
    labeler: User,
    ranks_by_text: dict[str, int] | None = None,
    **extra: object,
) -> Ranking:
    """Let `labeler` take the next ranking task and rank it (by default in the order shown,
    or by completion text: {"answer 0": 2, ...}; equal ranks are ties)."""
    task = queue.next_task(session, project, labeler, "ranking")
    assert task is not None, "no ranking task is waiting for this labeler"
    texts = {c.id: c.text for c in task.item.completions}
    order = task.completion_order or []
    ranks = [ranks_by_text[texts[cid]] if ranks_by_text else n for n, cid in enumerate(order, 1)]
    judgements = [{"completion_id": cid, "rank": r} for cid, r in zip(order, ranks, strict=True)]
    has_ties = len(set(ranks)) < len(ranks)
    data = RankingIn.model_validate({"judgements": judgements, "has_ties": has_ties, **extra})
    return submissions.submit_ranking(session, task.id, labeler, data)


def make_demonstration(session: Session, project: Project, labeler: User, answer: str):  # type: ignore[no-untyped-def]
    task = queue.next_task(session, project, labeler, "demonstration")
    assert task is not None, "no demonstration task is waiting for this labeler"
    data = DemonstrationIn(kind="single", answer=answer)
    return submissions.submit_demonstration(session, task.id, labeler, data)


def make_prompt(session: Session, project: Project, author: User, **fields: object) -> Prompt:
    data = {"kind": "plain", "category": "generation", "instruction": "Write a poem.", **fields}
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
    return csrf_from(client.get("/labeler" if user.role == "labeler" else "/admin").text)


def bearer(session: Session, user: User) -> dict[str, str]:
    _token, plaintext = users.create_token(session, user, "test")
    return {"Authorization": f"Bearer {plaintext}"}
