"""Imports, shared machinery and the completions JSONL import.

Every import is **all or nothing per file**: the whole file is checked first, every bad line
is reported by its number, and one bad line imports nothing. Imports are **idempotent**: each
imported prompt and item carries an external id derived from its source (a message id, or a
hash of the line's content), so importing the same file again adds nothing. New prompts pass
prompt hygiene: near-duplicates are dropped and reported, prompts with personal data are held
for an admin's review.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, describe_validation_error
from app.models import Completion, Item, Project, Prompt, Ranking, RankingEntry, Slot, Task, User
from app.models.base import utcnow
from app.schemas.admin import RankingItemIn
from app.services import hygiene, overlap, splits
from app.services.prompts import NewItem, add_items

MAX_REPORTED_ERRORS = 50
CHUNK = 500
IMPORTED_ROLE = "imported"

M = TypeVar("M", bound=BaseModel)
Numbered = Sequence[tuple[int, RankingItemIn]]


# --- Reading files ---------------------------------------------------------------------------


def decode(data: bytes) -> str:
    """The file as text; a file that is not UTF-8 is refused with the line of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InvalidInput(
            f"Nothing was imported: the file is not UTF-8 text (line {line}, byte {exc.start}: "
            f"{exc.reason})."
        ) from None


def parse_jsonl(text: str, model: type[M] = RankingItemIn) -> list[tuple[int, M]]:  # type: ignore[assignment]
    """Parse JSON lines into `model`s, reporting every bad line by its number."""
    parsed, errors = [], []
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            parsed.append((number, model.model_validate(json.loads(line))))
        except json.JSONDecodeError as exc:
            truncated = number == len(lines) and not text.endswith("\n")
            hint = "; the file looks truncated" if truncated else ""
            errors.append(f"line {number}: not valid JSON ({exc.msg}{hint})")
        except ValidationError as exc:
            errors.append(f"line {number}: {describe_validation_error(exc)}")
    raise_if(errors, "line")
    if not parsed:
        raise InvalidInput("The file holds no items. Nothing was imported.")
    return parsed


def raise_if(errors: list[str], unit: str) -> None:
    if not errors:
        return
    shown = errors[:MAX_REPORTED_ERRORS]
    more = len(errors) - len(shown)
    tail = f"\n… and {more} more" if more else ""
    raise InvalidInput(
        f"Nothing was imported: {len(errors)} bad {unit}(s).\n" + "\n".join(shown) + tail
    )


def content_id(source: str, data: object) -> str:
    """A stable external id for content that has none: the source and a hash of its JSON."""
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return f"{source}:{hashlib.sha256(canonical.encode()).hexdigest()[:40]}"


# --- What every import needs -------------------------------------------------------------------


def existing_ids(
    session: Session,
    model: type[Prompt] | type[Item],
    project: Project,
    external_ids: Sequence[str],
) -> dict[str, int]:
    """The rows of `model` in the project that carry these external ids, by external id."""
    ids = list(dict.fromkeys(external_ids))
    found: dict[str, int] = {}
    for start in range(0, len(ids), CHUNK):
        found.update(
            session.execute(
                select(model.external_id, model.id).where(
                    model.project_id == project.id,
                    model.external_id.in_(ids[start : start + CHUNK]),
                )
            ).all()
        )
    return found


def imported_labeler(session: Session, source: str) -> User:
    """The account that imported rankings of a source belong to; it cannot log in."""
    username = f"imported:{source}"  # a name no real account can have (':' is not allowed)
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username, password_hash="!", role=IMPORTED_ROLE, is_active=False)
        session.add(user)
        session.flush()
    return user


def record_ranking(
    session: Session,
    item: Item,
    labeler: User,
    completions: list[Completion],
    ranks: list[int],
    slot_index: int = 0,
) -> Ranking:
    """Store a ranking made elsewhere as one finished slot and task of `labeler` (no commit).
    `ranks` (1 is best, equal ranks are ties) are given in the order of `completions`."""
    now = utcnow()
    slot = Slot(item_id=item.id, index=slot_index, state="done", labeler_id=labeler.id)
    session.add(slot)
    session.flush()
    task = Task(
        item_id=item.id,
        slot_id=slot.id,
        labeler_id=labeler.id,
        state="submitted",
        completion_order=[c.id for c in completions],
        served_at=now,
        lease_expires_at=now,
        finished_at=now,
    )
    session.add(task)
    session.flush()
    levels = {rank: i + 1 for i, rank in enumerate(sorted(set(ranks)))}
    ranking = Ranking(
        task_id=task.id,
        item_id=item.id,
        labeler_id=labeler.id,
        has_ties=len(levels) < len(ranks),
        time_spent_ms=None,
        created_at=now,
    )
    ranking.entries = [
        RankingEntry(completion_id=c.id, rank=levels[r])
        for c, r in zip(completions, ranks, strict=True)
    ]
    session.add(ranking)
    return ranking


# --- Completions JSONL -------------------------------------------------------------------------


@dataclass
class ImportReport:
    items: list[Item]  # created
    skipped: int  # lines imported before (same content): not added again
    dropped: list[str]  # new prompts left out as duplicates, with the reason
    held: int  # new prompts with personal data, held for an admin's review


def import_ranking_items(
    session: Session, project: Project, items: Numbered, unit: str = "item"
) -> ImportReport:
    """Create the prompts (when new), ranking items, slots and completions, in one commit."""
    report = add_ranking_items(session, project, items, unit)
    session.commit()
    return report


def add_ranking_items(
    session: Session, project: Project, items: Numbered, unit: str = "item"
) -> ImportReport:
    """import_ranking_items without the commit, for units of work that import as one step
    (a finished sample job)."""
    wanted_ids = {item.prompt_id for _, item in items if item.prompt_id is not None}
    prompts = {
        p.id: p
        for p in session.scalars(
            select(Prompt).where(Prompt.id.in_(wanted_ids), Prompt.project_id == project.id)
        )
    }
    errors = []
    for number, item in items:
        k = len(item.completions)
        if not project.k_min <= k <= project.k_max:
            errors.append(
                f"{unit} {number}: K = {k} completions, outside the project's range "
                f"{project.k_min}..{project.k_max}"
            )
        if item.prompt_id is not None and item.prompt_id not in prompts:
            errors.append(f"{unit} {number}: there is no prompt {item.prompt_id} in this project")
    raise_if(errors, unit)

    keyed: dict[str, tuple[int, RankingItemIn]] = {}
    for number, item in items:
        keyed.setdefault(content_id("jsonl", item.model_dump(mode="json")), (number, item))
    done = existing_ids(session, Item, project, list(keyed))
    new = {key: line for key, line in keyed.items() if key not in done}
    new_prompts = {
        key: _new_prompt(project, key, item)
        for key, (_, item) in new.items()
        if item.prompt is not None
    }
    dropped = _duplicates(session, project, new, new_prompts, unit)
    kept = {key: line for key, line in new.items() if key not in dropped}
    kept_prompts = [new_prompts[key] for key in kept if key in new_prompts]
    splits.place(session, project, kept_prompts)
    session.add_all(kept_prompts)

    ordinals = overlap.reserve_ordinals(session, project, len(kept))
    slots = [overlap.slots_for(project, ordinal) for ordinal in ordinals]
    created = add_items(
        session,
        project,
        [
            NewItem(
                prompt=new_prompts.get(key) or prompts[item.prompt_id],  # type: ignore[index]
                kind="ranking",
                slots=count,
                completions=item.completions,
                external_id=key,
            )
            for (key, (_, item)), count in zip(kept.items(), slots, strict=True)
        ],
    )
    lines = [item for _, item in kept.values()]
    _record_imported_rankings(session, lines, created, slots)
    return ImportReport(
        items=created,
        skipped=len(items) - len(new),
        dropped=list(dropped.values()),
        held=sum(p.review_state == "held" for p in kept_prompts),
    )


def _new_prompt(project: Project, key: str, item: RankingItemIn) -> Prompt:
    assert item.prompt is not None
    prompt = Prompt(
        project_id=project.id,
        external_id=key,
        external_user_id=item.prompt.user_id,
        author_key=splits.author_key(external_user_id=item.prompt.user_id, source_id=key),
        kind="plain",
        category=item.prompt.category,
        language=item.prompt.language,
        instruction=item.prompt.instruction,
    )
    hygiene.prepare(prompt)
    return prompt


def _duplicates(
    session: Session,
    project: Project,
    lines: dict[str, tuple[int, RankingItemIn]],
    new_prompts: dict[str, Prompt],
    unit: str,
) -> dict[str, str]:
    """New prompts that repeat a prompt of the project or an earlier one of the same import,
    by key, with the reason they are dropped."""
    keys = list(new_prompts)
    texts = [new_prompts[key].render() for key in keys]
    within = hygiene.find_duplicates(texts, project.dedup_min_prefix, project.dedup_prefix_percent)
    reasons = {
        keys[d]: f"{unit} {lines[keys[d]][0]}: duplicate of {unit} {lines[keys[first]][0]}"
        for d, first in within.items()
    }
    unique = [(key, text) for key, text in zip(keys, texts, strict=True) if key not in reasons]
    existing = hygiene.duplicates_of(session, project, [text for _key, text in unique])
    for (key, _text), prompt in zip(unique, existing, strict=True):
        if prompt is not None:
            reasons[key] = f"{unit} {lines[key][0]}: duplicate of prompt {prompt.id}"
    return dict(sorted(reasons.items(), key=lambda reason: lines[reason[0]][0]))


def _record_imported_rankings(
    session: Session, lines: list[RankingItemIn], items: list[Item], slots: list[int]
) -> None:
    """The rankings that came with the lines, each in an extra, finished slot of its item."""
    ranked = [
        (line, item, count)
        for line, item, count in zip(lines, items, slots, strict=True)
        if line.ranking
    ]
    if not ranked:
        return
    labeler = imported_labeler(session, "jsonl")
    item_ids = [item.id for _, item, _ in ranked]
    completions: dict[int, list[Completion]] = {}
    for start in range(0, len(item_ids), CHUNK):
        query = (
            select(Completion)
            .where(Completion.item_id.in_(item_ids[start : start + CHUNK]))
            .order_by(Completion.item_id, Completion.position)
        )
        for completion in session.scalars(query):
            completions.setdefault(completion.item_id, []).append(completion)
    for line, item, count in ranked:
        record_ranking(session, item, labeler, completions[item.id], line.ranks(), count)


# --- Building blocks of the ranking imports (OASST trees, chosen/rejected pairs) ---------------


@dataclass(frozen=True)
class RankedAnswer:
    text: str
    rank: int  # 1 is best; equal ranks are ties
    model: str | None = None
    external_id: str | None = None


def new_prompt(
    project: Project,
    external_id: str,
    messages: list[dict[str, str]],
    language: str = "en",
    user_id: str | None = None,
    author_source: str | None = None,
) -> Prompt:
    """An imported prompt from a conversation that ends with the user turn to answer (not added).
    Its author is the original user when known, else `author_source` (else the prompt itself)."""
    *context, last = messages
    prompt = Prompt(
        project_id=project.id,
        external_id=external_id,
        external_user_id=user_id,
        author_key=splits.author_key(
            external_user_id=user_id, source_id=author_source or external_id
        ),
        kind="dialogue" if context else "imported",
        category="other",
        language=language,
        instruction=last["content"],
        context=context or None,
    )
    hygiene.prepare(prompt)
    return prompt


def add_ranked_item(
    session: Session,
    project: Project,
    prompt: Prompt,
    external_id: str,
    answers: list[RankedAnswer],
    labeler: User,
) -> Item:
    """A ranking item whose one annotation, by `labeler`, was made elsewhere (no commit).
    Completions are stored best first."""
    item = Item(project_id=project.id, prompt=prompt, kind="ranking", external_id=external_id)
    session.add(item)
    session.flush()
    ordered = sorted(answers, key=lambda a: a.rank)
    completions = [
        Completion(
            item_id=item.id,
            position=i,
            text=a.text,
            model_name=a.model,
            external_id=a.external_id,
        )
        for i, a in enumerate(ordered)
    ]
    session.add_all(completions)
    session.flush()
    record_ranking(session, item, labeler, completions, [a.rank for a in ordered])
    return item
