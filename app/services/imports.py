"""Bulk imports of completions to rank. All or nothing: one bad line imports nothing."""

import json
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, describe_validation_error
from app.models import Item, Project, Prompt
from app.schemas.admin import RankingItemIn
from app.services import hygiene, overlap
from app.services.prompts import add_item

MAX_REPORTED_ERRORS = 50

Numbered = Sequence[tuple[int, RankingItemIn]]


def parse_jsonl(text: str) -> list[tuple[int, RankingItemIn]]:
    """Parse JSON lines into ranking items, reporting every bad line by its number."""
    parsed, errors = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parsed.append((number, RankingItemIn.model_validate(json.loads(line))))
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: not valid JSON ({exc.msg})")
        except ValidationError as exc:
            errors.append(f"line {number}: {describe_validation_error(exc)}")
    _raise_if(errors, "line")
    if not parsed:
        raise InvalidInput("The file holds no items. Nothing was imported.")
    return parsed


@dataclass
class ImportReport:
    items: list[Item]
    dropped: list[str]  # new prompts left out as duplicates, with the reason
    held: int  # new prompts with personal data, held for an admin's review


def import_ranking_items(
    session: Session, project: Project, items: Numbered, unit: str = "item"
) -> ImportReport:
    """Create the prompts (when new), ranking items, slots and completions, in one commit.

    A bad line imports nothing; a new prompt that duplicates one of the project (or an earlier
    line) is dropped and reported; one with personal data is imported but held for review."""
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
    _raise_if(errors, unit)

    # Keyed by position in `items`: line numbers are for messages.
    new_prompts = {
        i: _new_prompt(project, item)
        for i, (_, item) in enumerate(items)
        if item.prompt is not None
    }
    dropped = _duplicates(session, project, items, new_prompts, unit)
    kept = [i for i in range(len(items)) if i not in dropped]
    report = ImportReport(items=[], dropped=list(dropped.values()), held=0)
    ordinals = overlap.reserve_ordinals(session, project, len(kept))
    for i, ordinal in zip(kept, ordinals, strict=True):
        item = items[i][1]
        if i in new_prompts:
            prompt = new_prompts[i]
            session.add(prompt)
            report.held += prompt.review_state == "held"
        else:
            prompt = prompts[item.prompt_id]  # type: ignore[index]
        report.items.append(
            add_item(
                session,
                project,
                prompt,
                "ranking",
                slots=overlap.slots_for(project, ordinal),
                completions=item.completions,
            )
        )
    return report


def _new_prompt(project: Project, item: RankingItemIn) -> Prompt:
    assert item.prompt is not None
    prompt = Prompt(
        project_id=project.id,
        external_user_id=item.prompt.user_id,
        kind="plain",
        category=item.prompt.category,
        language=item.prompt.language,
        instruction=item.prompt.instruction,
    )
    hygiene.prepare(prompt)
    return prompt


def _duplicates(
    session: Session, project: Project, items: Numbered, new_prompts: dict[int, Prompt], unit: str
) -> dict[int, str]:
    """New prompts that repeat a prompt of the project or an earlier one of the same import,
    by position, with the reason they are dropped."""
    positions = list(new_prompts)
    texts = [new_prompts[i].render() for i in positions]
    within = hygiene.find_duplicates(texts, project.dedup_min_prefix, project.dedup_prefix_percent)
    reasons = {
        positions[d]: f"{unit} {items[positions[d]][0]}: duplicate of {unit} "
        f"{items[positions[first]][0]}"
        for d, first in within.items()
    }
    for i, text in zip(positions, texts, strict=True):
        if i not in reasons and (existing := hygiene.duplicate_of(session, project, text)):
            reasons[i] = f"{unit} {items[i][0]}: duplicate of prompt {existing.id}"
    return dict(sorted(reasons.items()))


def _raise_if(errors: list[str], unit: str) -> None:
    if not errors:
        return
    shown = errors[:MAX_REPORTED_ERRORS]
    more = len(errors) - len(shown)
    tail = f"\n… and {more} more" if more else ""
    raise InvalidInput(
        f"Nothing was imported: {len(errors)} bad {unit}(s).\n" + "\n".join(shown) + tail
    )
