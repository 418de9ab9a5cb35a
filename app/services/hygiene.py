"""Prompt hygiene, as InstructGPT did it: duplicates by longest common prefix, at most N prompts
per user, and prompts with personal data held back until an admin reviews them.

Duplicates. Texts are compared after normalizing (case folded, runs of white space made one
space). Two prompts are duplicates when their common prefix reaches the project's
dedup_min_prefix characters, or dedup_prefix_percent of the longer one. Among sorted strings
the longest common prefix of any string is with a neighbour, so a batch is checked by sorting
once and comparing neighbours (O(n log n), never all pairs), and a new prompt against the
database by its two neighbours in the (project, dedup_key) index. Neighbours that are
duplicates form a group; the earliest prompt of a group is kept.
"""

import itertools
import re
from dataclasses import dataclass
from functools import cache

from sqlalchemy import (
    ColumnElement,
    Integer,
    LargeBinary,
    Select,
    and_,
    column,
    func,
    or_,
    select,
    values,
)
from sqlalchemy.orm import Session, aliased

from app.errors import InvalidInput, NotFound
from app.models import Project, Prompt, User
from app.models.base import constant
from app.schemas.admin import DEDUP_KEY_CHARS
from app.services import audit, pii

USABLE_STATES = ("clear", "kept", "redacted")
REVIEW_DECISIONS = ("keep", "redact", "drop")
NEIGHBOUR_CHUNK = 500


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text.casefold()).strip()


def dedup_key(text: str) -> bytes:
    """What the index sorts by: bytes compare in code-point order in SQLite and PostgreSQL
    alike, where text would follow each database's collation."""
    return normalize(text)[:DEDUP_KEY_CHARS].encode("utf-8")


def common_prefix_length(first: str, second: str) -> int:
    """Compared a block at a time, then character by character inside the differing block."""
    limit, length, block = min(len(first), len(second)), 0, 64
    while (
        length + block <= limit
        and first[length : length + block] == second[length : length + block]
    ):
        length += block
    while length < limit and first[length] == second[length]:
        length += 1
    return length


def is_duplicate(first: str, second: str, min_prefix: int, percent: int) -> bool:
    """Whether two normalized texts share a long enough common prefix."""
    common = common_prefix_length(first, second)
    return common >= min_prefix or common * 100 >= percent * max(len(first), len(second))


def find_duplicates(texts: list[str], min_prefix: int, percent: int) -> dict[int, int]:
    """For a batch of texts: {index of a duplicate: index of the earlier text it repeats}."""
    normalized = [normalize(t) for t in texts]
    order = sorted(range(len(texts)), key=normalized.__getitem__)
    duplicates: dict[int, int] = {}
    group = [order[0]] if order else []
    for previous, current in itertools.pairwise(order):
        if is_duplicate(normalized[previous], normalized[current], min_prefix, percent):
            group.append(current)
            continue
        _keep_earliest(group, duplicates)
        group = [current]
    _keep_earliest(group, duplicates)
    return duplicates


def _keep_earliest(group: list[int], duplicates: dict[int, int]) -> None:
    if not group:
        return
    first = min(group)
    duplicates.update({index: first for index in group if index != first})


def duplicate_of(session: Session, project: Project, text: str) -> Prompt | None:
    """An existing prompt of the project that this text duplicates, if any."""
    return duplicates_of(session, project, [text])[0]


def duplicates_of(session: Session, project: Project, texts: list[str]) -> list[Prompt | None]:
    """For each text, an existing prompt of the project that it duplicates, if any: one of its
    two neighbours in the (project, dedup_key) index, looked up for NEIGHBOUR_CHUNK texts at
    a time in one query (an import checks thousands of new prompts)."""
    keys = [dedup_key(text) for text in texts]
    neighbours: list[list[int]] = []
    for start in range(0, len(keys), NEIGHBOUR_CHUNK):
        neighbours += _neighbours(session, project.id, keys[start : start + NEIGHBOUR_CHUNK])
    ids = {i for pair in neighbours for i in pair}
    prompts = {
        p.id: p
        for start in range(0, len(ids), NEIGHBOUR_CHUNK)
        for p in session.scalars(
            select(Prompt).where(Prompt.id.in_(sorted(ids)[start : start + NEIGHBOUR_CHUNK]))
        )
    }
    found: list[Prompt | None] = []
    for text, pair in zip(texts, neighbours, strict=True):
        normalized = normalize(text)
        found.append(
            next(
                (
                    prompts[i]
                    for i in pair
                    if is_duplicate(
                        normalize(prompts[i].render()),
                        normalized,
                        project.dedup_min_prefix,
                        project.dedup_prefix_percent,
                    )
                ),
                None,
            )
        )
    return found


def _neighbours(session: Session, project_id: int, keys: list[bytes]) -> list[list[int]]:
    """The ids of the prompts just below (or at) and just above each key: one query."""
    wanted = values(column("n", Integer), column("key", LargeBinary), name="wanted")
    wanted = wanted.data(list(enumerate(keys))).cte()
    base = select(Prompt.id).where(
        Prompt.project_id == project_id, Prompt.review_state != "dropped"
    )
    below = base.where(Prompt.dedup_key <= wanted.c.key).order_by(
        Prompt.dedup_key.desc(), Prompt.id
    )
    above = base.where(Prompt.dedup_key > wanted.c.key).order_by(Prompt.dedup_key, Prompt.id)
    rows = session.execute(
        select(
            wanted.c.n,
            below.limit(1).scalar_subquery(),
            above.limit(1).scalar_subquery(),
        ).order_by(wanted.c.n)
    ).all()
    return [[i for i in (low, high) if i is not None] for _n, low, high in rows]


def user_key(prompt: Prompt) -> str | None:
    if prompt.author_id is not None:
        return f"user:{prompt.author_id}"
    if prompt.external_user_id:
        return f"external:{prompt.external_user_id}"
    return None


def pii_findings(prompt: Prompt, names: list[str]) -> list[dict[str, str]]:
    """Personal data in every text of the prompt, as stored on it for the admin's review."""
    found = [f for text in _texts(prompt) for f in pii.find_pii(text, names)]
    return [{"kind": f.kind, "text": f.text} for f in found]


def _texts(prompt: Prompt) -> list[str]:
    texts = [prompt.instruction, prompt.use_case or ""]
    for pair in prompt.few_shot_pairs or []:
        texts += [pair["query"], pair["response"]]
    return texts


def prepare(prompt: Prompt, names: list[str] = ()) -> None:  # type: ignore[assignment]
    """Fill in the hygiene columns of a new prompt; personal data holds it for review."""
    prompt.user_key = user_key(prompt)
    prompt.dedup_key = dedup_key(prompt.render())
    findings = pii_findings(prompt, list(names))
    prompt.pii_findings = findings or None
    prompt.review_state = "held" if findings else "clear"


# --- What enters queues and exports ---------------------------------------------------------


def within_user_cap() -> ColumnElement[bool]:
    """True for a prompt among the earliest max_prompts_per_user (not dropped) of its user."""
    earlier = aliased(Prompt)
    cap = select(Project.max_prompts_per_user).where(Project.id == Prompt.project_id)
    before = select(func.count()).where(
        earlier.project_id == Prompt.project_id,
        earlier.user_key == Prompt.user_key,
        earlier.id < Prompt.id,
        earlier.review_state != constant("dropped"),
    )
    return or_(Prompt.user_key.is_(None), before.scalar_subquery() < cap.scalar_subquery())


@cache  # a constant expression; building it is costly and the queue asks for it on every task
def usable() -> ColumnElement[bool]:
    """Prompts that may enter queues and exports: reviewed or clean, and within the user cap."""
    usable_states = [constant(state) for state in USABLE_STATES]
    return and_(Prompt.review_state.in_(usable_states), within_user_cap())


@dataclass(frozen=True)
class UserOverCap:
    user_key: str
    username: str
    prompts: int
    kept: int
    first_left_out_id: int


def users_over_cap(session: Session, project: Project) -> list[UserOverCap]:
    """Users with more prompts than the project keeps; their earliest prompts are the ones used."""
    counts = session.execute(
        select(Prompt.user_key, func.count())
        .where(
            Prompt.project_id == project.id,
            Prompt.user_key.is_not(None),
            Prompt.review_state != "dropped",
        )
        .group_by(Prompt.user_key)
        .having(func.count() > project.max_prompts_per_user)
        .order_by(func.count().desc(), Prompt.user_key)
    ).all()
    rows = []
    for key, total in counts:
        first_left_out = session.scalar(
            _of_user(project, key).order_by(Prompt.id).offset(project.max_prompts_per_user)
        )
        rows.append(
            UserOverCap(
                key, _username(session, key), total, project.max_prompts_per_user, first_left_out
            )
        )
    return rows


def _of_user(project: Project, key: str) -> Select[tuple[int]]:
    return select(Prompt.id).where(
        Prompt.project_id == project.id, Prompt.user_key == key, Prompt.review_state != "dropped"
    )


def _username(session: Session, key: str) -> str:
    kind, _, value = key.partition(":")
    if kind == "user":
        user = session.get(User, int(value))
        return user.username if user else key
    return f"{value} (imported)"


# --- Review of prompts held for personal data -------------------------------------------------


def held_prompts(session: Session, project: Project) -> list[Prompt]:
    return list(
        session.scalars(
            select(Prompt)
            .where(Prompt.project_id == project.id, Prompt.review_state == "held")
            .order_by(Prompt.id)
        )
    )


def review_prompt(
    session: Session, project: Project, prompt_id: int, decision: str, actor: User | None = None
) -> Prompt:
    """An admin's decision on a held prompt: keep it as is, redact what was found, or drop it."""
    if decision not in REVIEW_DECISIONS:
        raise InvalidInput(f"Decide one of {', '.join(REVIEW_DECISIONS)}, not {decision!r}.")
    prompt = session.get(Prompt, prompt_id)
    if prompt is None or prompt.project_id != project.id:
        raise NotFound(f"There is no prompt {prompt_id} in this project.")
    if prompt.review_state != "held":
        raise InvalidInput(f"Prompt {prompt_id} is not waiting for review ({prompt.review_state}).")
    if decision == "redact":
        names = [f["text"] for f in prompt.pii_findings or [] if f["kind"] == "name"]
        prompt.instruction = pii.redact(prompt.instruction, names)
        if prompt.use_case:
            prompt.use_case = pii.redact(prompt.use_case, names)
        if prompt.few_shot_pairs:
            prompt.few_shot_pairs = [
                {k: pii.redact(v, names) for k, v in pair.items()} for pair in prompt.few_shot_pairs
            ]
        prompt.dedup_key = dedup_key(prompt.render())
    prompt.review_state = {"keep": "kept", "redact": "redacted", "drop": "dropped"}[decision]
    # The findings' kinds only: the log must not become a copy of the personal data.
    kinds = sorted({f["kind"] for f in prompt.pii_findings or []})
    audit.record(
        session,
        actor,
        "prompt.reviewed",
        prompt,
        {"review_state": "held", "findings": kinds},
        {"review_state": prompt.review_state},
    )
    session.commit()
    return prompt
