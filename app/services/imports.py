"""Bulk imports of completions to rank. All or nothing: one bad line imports nothing."""

import json
from collections.abc import Sequence

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, describe_validation_error
from app.models import Item, Project, Prompt
from app.schemas.admin import RankingItemIn
from app.services import overlap
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


def import_ranking_items(
    session: Session, project: Project, items: Numbered, unit: str = "item"
) -> list[Item]:
    """Create the prompts (when new), ranking items, slots and completions, in one commit."""
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

    created = []
    ordinals = iter(overlap.reserve_ordinals(session, project, len(items)))
    for _, item in items:
        prompt = prompts.get(item.prompt_id) if item.prompt_id is not None else None
        if prompt is None:
            assert item.prompt is not None
            prompt = Prompt(
                project_id=project.id,
                external_user_id=item.prompt.user_id,
                kind="plain",
                category=item.prompt.category,
                language=item.prompt.language,
                instruction=item.prompt.instruction,
            )
            session.add(prompt)
        created.append(
            add_item(
                session,
                project,
                prompt,
                "ranking",
                slots=overlap.slots_for(project, next(ordinals)),
                completions=item.completions,
            )
        )
    session.commit()
    return created


def _raise_if(errors: list[str], unit: str) -> None:
    if not errors:
        return
    shown = errors[:MAX_REPORTED_ERRORS]
    more = len(errors) - len(shown)
    tail = f"\n… and {more} more" if more else ""
    raise InvalidInput(
        f"Nothing was imported: {len(errors)} bad {unit}(s).\n" + "\n".join(shown) + tail
    )
