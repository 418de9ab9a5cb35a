"""A small demo project: an admin, three labelers, prompts of each kind and items to rank."""

import random
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict
from app.models import User
from app.schemas.admin import CompletionIn, NewPromptIn, ProjectSettingsIn, RankingItemIn, UserIn
from app.schemas.jobs import BaseModelIn
from app.schemas.labeling import FewShotPair, PromptIn
from app.services import imports, projects, prompts, registry, users

DEMO_PASSWORD = "demo-password"
DEMO_USERS = [("admin", "admin"), ("alice", "labeler"), ("bob", "labeler"), ("carol", "labeler")]
GUIDELINES = """\
# Guidelines

Rank answers by **helpfulness** first: does it do what the user asked?
Then truthfulness and harmlessness.

- Skip a task if you cannot tell what the user wants.
- Flag anything harmful, made up, or off-instruction.
- Use ties only when two answers are truly equally good.
"""
QUESTIONS = [
    ("Explain why the sky is blue in two sentences.", "open_qa"),
    ("Write a haiku about autumn rain.", "generation"),
    ("List five ideas for a rainy-day activity with kids.", "brainstorming"),
    ("Summarize: The meeting moved to Thursday because the room was booked.", "summarization"),
    ("Rewrite more politely: 'Send me the report now.'", "rewrite"),
    ("Is this review positive or negative? 'The food was cold and late.'", "classification"),
    ("What is the capital of Australia?", "closed_qa"),
    ("Extract the dates from: 'We met on 3 May and again on 9 June.'", "extraction"),
]
STYLES = [
    "{q} Here is a careful, direct answer.",
    "Sure! {q} Let me try: it depends on many things.",
    "I am not sure, but I think the answer is simple.",
    "{q} The answer, step by step: first, second, third.",
    "As an AI, I would rather not answer that.",
    "Great question. In short: yes.",
]


def load_demo(session: Session) -> list[tuple[str, str, str]]:
    """Fill an empty database; returns the (username, role, password) logins it created."""
    if session.scalar(select(func.count()).select_from(User)):
        raise Conflict("The database is not empty; the demo only fills an empty one.")
    created = [
        users.create_user(session, UserIn(username=name, password=DEMO_PASSWORD, role=role))
        for name, role in DEMO_USERS
    ]
    labelers = [u for u in created if u.role == "labeler"]
    project = projects.create_project(
        session, ProjectSettingsIn(name="Demo assistant", guidelines=GUIDELINES)
    )
    rng = random.Random(7)
    # Three rounds of completions per question: the first round creates the prompts, the later
    # rounds add items to them (a repeated new prompt would be dropped as a duplicate).
    prompt_ids: list[int] = []
    for round_ in range(3):
        items = []
        for i, (question, category) in enumerate(QUESTIONS):
            k = rng.randint(project.k_min, min(project.k_max, len(STYLES)))
            completions = [
                CompletionIn(
                    text=style.format(q=question), model=f"demo-model-{j % 2}", sampling={"t": 0.7}
                )
                for j, style in enumerate(rng.sample(STYLES, k))
            ]
            if round_ == 0:
                user = f"user-{i % 5}"
                prompt = NewPromptIn(instruction=question, category=category, user_id=user)
                line = RankingItemIn(prompt=prompt, completions=completions)
            else:
                line = RankingItemIn(prompt_id=prompt_ids[i], completions=completions)
            items.append((i + 1, line))
        report = imports.import_ranking_items(session, project, items)
        prompt_ids = prompt_ids or [item.prompt_id for item in report.items]
    written = [
        PromptIn(kind="plain", category="generation", instruction="Write a limerick about a cat."),
        PromptIn(
            kind="few_shot",
            category="classification",
            instruction="Classify the sentiment of each sentence.",
            few_shot_pairs=[
                FewShotPair(query="I love it.", response="positive"),
                FewShotPair(query="It broke on day one.", response="negative"),
            ],
        ),
        PromptIn(
            kind="user_based",
            category="chat",
            instruction="Help me plan a three-day trip to Lisbon.",
            use_case="Travel planning assistant",
        ),
    ]
    for n, data in enumerate(written):
        prompts.create_prompt(session, project, labelers[n % len(labelers)], data)
    return [(u.username, u.role, DEMO_PASSWORD) for u in created]


DEMO_BASE_MODEL = "tiny-demo-base"


def demo_texts() -> list[str]:
    """What the demo's tokenizer learns from: the demo's own questions and answers."""
    texts = [q for q, _ in QUESTIONS] + [s.format(q=q) for q, _ in QUESTIONS for s in STYLES]
    return ["User: ", "Assistant:", "System: ", GUIDELINES, *texts]


def register_demo_base(session: Session, data_dir: Path) -> str:
    """Build the demo's tiny base model under DATA_DIR/models and register it, so the demo runs
    the whole loop (SFT, RM, PPO, sampling) on CPU without downloading anything. Needs the
    trainer extra (torch, transformers); returns the model version's name."""
    from trainer.tiny import build_demo_base

    directory = build_demo_base(data_dir / "models" / DEMO_BASE_MODEL, demo_texts())
    registry.register_base(session, BaseModelIn(name=DEMO_BASE_MODEL, path=str(directory)), None)
    return DEMO_BASE_MODEL
