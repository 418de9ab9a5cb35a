"""Gold items: ranking items with researchers' answers.

They serve twice. In a screening test (purpose "screening") candidates answer them; mixed into
the normal ranking queue (purpose "gold") at the project's gold_percent, they measure each
labeler's accuracy over time. A gold task looks exactly like any other ranking task: same page,
same API shape; only the item's purpose, never shown to labelers, tells them apart.

Gold and screening items have one slot per labeler, created when served (slot index = labeler
id), so every labeler can be served each gold item once. Their prompts are researchers', not
users': code that builds training data keeps to work items with work_item_condition().
"""

import random
from datetime import timedelta

import numpy as np
from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from app.errors import InvalidInput
from app.models import Completion, GoldAnswer, Item, Project, Prompt, Slot, Task, User
from app.models.base import utcnow
from app.schemas.screening import GoldItemIn, ScreeningPromptIn
from app.services import agreement, splits

GOLD_LABELER = -1  # stands for the researchers in ranking tables


def researcher_prompt_ids(session: Session, project_ids: list[int]) -> set[int]:
    """Prompts of gold or screening items: the researchers', never the normal queue's."""
    query = select(Item.prompt_id).where(Item.project_id.in_(project_ids), Item.purpose != "work")
    return set(session.scalars(query.distinct()))


def work_item_condition() -> ColumnElement[bool]:
    """True for items of the normal queue (not gold, not screening): training data."""
    return Item.purpose == "work"


# Gold and screening prompts are the researchers' own: one author, so one split (and never
# exported as work: see work_item_condition).
RESEARCHERS = splits.author_key(external_user_id="researchers")


def _prompt(session: Session, project: Project, instruction: str, category: str) -> Prompt:
    prompt = Prompt(
        project_id=project.id,
        kind="plain",
        category=category,
        language="en",
        instruction=instruction,
        author_key=RESEARCHERS,
        review_state="clear",
    )
    splits.place(session, project, [prompt])
    return prompt


def check_k(project: Project, k: int) -> None:
    """Labelers' rankings must have K in the project's range, so gold items too."""
    if not project.k_min <= k <= project.k_max:
        raise InvalidInput(
            f"This item has K = {k} completions, outside the project's range "
            f"{project.k_min}..{project.k_max}."
        )


def add_gold_item(
    session: Session, project: Project, data: GoldItemIn, purpose: str = "gold"
) -> Item:
    """A ranking item with its researchers' answer, for the gold pool or the screening test."""
    [item] = add_gold_items(session, project, [data], purpose)
    return item


def add_gold_items(
    session: Session, project: Project, items: list[GoldItemIn], purpose: str = "gold"
) -> list[Item]:
    """Several gold items in one commit: one with K outside the project's range adds none."""
    for data in items:
        check_k(project, len(data.completions))
    created = [_gold_item(session, project, data, purpose) for data in items]
    session.commit()
    return created


def _gold_item(session: Session, project: Project, data: GoldItemIn, purpose: str) -> Item:
    item = Item(
        project_id=project.id,
        prompt=_prompt(session, project, data.instruction, data.category),
        kind="ranking",
        purpose=purpose,
        completions=[Completion(position=i, text=t) for i, t in enumerate(data.completions)],
    )
    session.add(item)
    session.flush()
    session.add(GoldAnswer(item_id=item.id, ranks=data.gold_ranks, flags=data.gold_flags))
    return item


def add_demonstration_prompt(session: Session, project: Project, data: ScreeningPromptIn) -> Item:
    """A screening prompt the candidate answers with a demonstration (graded by an admin)."""
    item = Item(
        project_id=project.id,
        prompt=_prompt(session, project, data.instruction, data.category),
        kind="demonstration",
        purpose="screening",
    )
    session.add(item)
    session.commit()
    return item


def serve(session: Session, project: Project, labeler: User, item: Item) -> Task | None:
    """Lease a new slot of a gold or screening item to the labeler; None if they had it."""
    now = utcnow()
    expires = now + timedelta(seconds=project.lease_seconds)
    slot = Slot(
        item_id=item.id,
        index=labeler.id,
        state="leased",
        labeler_id=labeler.id,
        lease_expires_at=expires,
    )
    order = [c.id for c in item.completions]
    random.shuffle(order)
    try:
        session.add(slot)
        session.flush()
        task = Task(
            item=item,
            slot_id=slot.id,
            labeler_id=labeler.id,
            completion_order=order or None,
            served_at=now,
            lease_expires_at=expires,
        )
        session.add(task)
        session.commit()
    except IntegrityError:  # the same labeler, in a concurrent request
        session.rollback()
        return None
    return task


def next_gold_task(session: Session, project: Project, labeler: User) -> Task | None:
    """A gold ranking task the labeler has not had yet, chosen at random; None if none is left."""
    unseen = session.scalars(
        select(Item.id).where(
            Item.project_id == project.id,
            Item.purpose == "gold",
            Item.kind == "ranking",
            ~exists().where(Task.item_id == Item.id, Task.labeler_id == labeler.id),
        )
    ).all()
    if not unseen:
        return None
    item = session.get(
        Item,
        random.choice(unseen),
        options=[joinedload(Item.prompt), selectinload(Item.completions)],
    )
    assert item is not None
    return serve(session, project, labeler, item)


def answers(session: Session, item_ids: set[int]) -> dict[int, GoldAnswer]:
    rows = session.scalars(select(GoldAnswer).where(GoldAnswer.item_id.in_(item_ids)))
    return {answer.item_id: answer for answer in rows}


def with_gold(
    table: agreement.RankingTable, gold: dict[int, GoldAnswer]
) -> tuple[agreement.RankingTable, agreement.Comparisons]:
    """The rankings plus one gold ranking per item (labeler GOLD_LABELER), and only the
    comparisons of a labeler's ranking with the gold one."""
    gold_rows = [
        (item_id, GOLD_LABELER, answer.ranks)
        for item_id, answer in sorted(gold.items())
        if answer.ranks is not None
    ]
    extra = agreement.RankingTable.from_rows(gold_rows)
    combined = agreement.RankingTable(
        item=np.concatenate([table.item, extra.item]),
        labeler=np.concatenate([table.labeler, extra.labeler]),
        ranks=np.concatenate([table.ranks, extra.ranks]),
        # The earliest day, so that a comparison's day (the later one) is the labeler's.
        day=np.concatenate([table.day, extra.day]),
    )
    comparisons = agreement.compare(combined)
    involves_gold = (combined.labeler[comparisons.a] == GOLD_LABELER) | (
        combined.labeler[comparisons.b] == GOLD_LABELER
    )
    return combined, agreement.subset(comparisons, involves_gold)
