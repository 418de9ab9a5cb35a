"""Labeler groups: *training* labelers (screened) and *held-out* labelers (not screened).

InstructGPT kept a group of held-out labelers whose preferences the models never trained on,
to check that the models generalize to other people. Their work is collected like anyone
else's but stays out of training data by default: code that builds training sets (exports,
the trainer's snapshots) adds

    training_labeler_condition(Ranking.labeler_id)       # or Demonstration.labeler_id, ...

to its query. The quality report shows held-out agreement separately.
"""

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.errors import InvalidInput
from app.models import Item, User
from app.models.user import LABELER_GROUPS
from app.services import audit
from app.services.users import get_user

GROUP_NAMES = {"training": "Training", "held_out": "Held-out"}


def training_labeler_condition(labeler_id: InstrumentedAttribute[int]) -> ColumnElement[bool]:
    """True for work whose labeler is in the training group (the default for training data)."""
    return labeler_id.in_(select(User.id).where(User.labeler_group == "training"))


def held_out_labeler_condition(labeler_id: InstrumentedAttribute[int]) -> ColumnElement[bool]:
    """True for work whose labeler is in the held-out group (for evaluation sets)."""
    return labeler_id.in_(select(User.id).where(User.labeler_group == "held_out"))


def item_open_to(labeler_id: ColumnElement[int]) -> ColumnElement[bool]:
    """True for items the labeler may be served: those for anyone, and those meant for the
    labeler's group (an evaluation's comparisons)."""
    group = select(User.labeler_group).where(User.id == labeler_id).scalar_subquery()
    return or_(Item.labeler_group.is_(None), Item.labeler_group == group)


def set_group(session: Session, user_id: int, group: str, actor: User | None = None) -> User:
    """Put a labeler (or a candidate, for when they are approved) into a group."""
    if group not in LABELER_GROUPS:
        raise InvalidInput(f"There is no labeler group {group!r}; use training or held_out.")
    user = get_user(session, user_id)
    if user.role == "admin":
        raise InvalidInput("Admins belong to no labeler group.")
    if user.labeler_group != group:
        before = {"labeler_group": user.labeler_group}
        audit.record(session, actor, "user.group_changed", user, before, {"labeler_group": group})
        user.labeler_group = group
        session.commit()
    return user


def groups_of(session: Session, user_ids: set[int]) -> dict[int, str]:
    rows = session.execute(select(User.id, User.labeler_group).where(User.id.in_(user_ids)))
    return {user_id: group for user_id, group in rows}
