"""The records of an export snapshot, read from the database in stable order and constant
memory: pages of BATCH rows by increasing id (keyset pagination, which works alike on SQLite
and PostgreSQL and holds no cursor open), and one query per page for the ranking entries and
their completions (no query per record). Records hold no timestamps; people appear as
pseudonyms (an HMAC of their author key with the deployment's secret key: stable across
snapshots of one deployment, meaningless elsewhere).
"""

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.models import (
    Completion,
    Demonstration,
    Item,
    Project,
    Prompt,
    Ranking,
    RankingEntry,
    User,
)
from app.models.work import prompt_messages
from app.schemas.labeling import FLAGS
from app.schemas.snapshot import ExportRequest
from app.services import gold, hygiene, pace
from app.services.imports import IMPORTED_ROLE

BATCH = 2000
Record = dict[str, Any]


def labeler_group(role: str, group: str) -> str:
    """The group of a labeler in exports: imported data, or the labeler's group."""
    return "imported" if role == IMPORTED_ROLE else group


@dataclass
class Selection:
    """An ExportRequest resolved against the database."""

    request: ExportRequest
    secret: bytes
    project_ids: list[int]
    excluded_labeler_ids: set[int]
    capped_prompt_ids: set[int]  # prompts beyond their author's cap
    _pseudonyms: dict[str, str] = field(default_factory=dict)

    def pseudonym(self, key: str) -> str:
        if key not in self._pseudonyms:
            digest = hmac.new(self.secret, key.encode(), hashlib.sha256).hexdigest()
            self._pseudonyms[key] = f"u-{digest[:16]}"
        return self._pseudonyms[key]


def select_data(session: Session, request: ExportRequest, secret_key: str) -> Selection:
    """Check the request against the data and resolve its filters."""
    if request.project_id is not None and session.get(Project, request.project_id) is None:
        raise NotFound(f"There is no project {request.project_id}.")
    project_ids = (
        [request.project_id]
        if request.project_id is not None
        else list(session.scalars(select(Project.id).order_by(Project.id)))
    )
    excluded = dict(
        session.execute(
            select(User.username, User.id).where(User.username.in_(request.exclude_labelers))
        ).all()
    )
    unknown = sorted(set(request.exclude_labelers) - set(excluded))
    if unknown:
        raise InvalidInput(f"There is no user named {', '.join(unknown)}.")
    return Selection(
        request=request,
        secret=secret_key.encode(),
        project_ids=project_ids,
        excluded_labeler_ids=set(excluded.values()),
        capped_prompt_ids=_capped(session, project_ids, request.max_prompts_per_author),
    )


def _capped(session: Session, project_ids: list[int], cap: int | None) -> set[int]:
    """Prompts beyond the first `cap` of their author (earliest first, then by id)."""
    if cap is None:
        return set()
    numbered = (
        select(
            Prompt.id,
            func.row_number()
            .over(
                partition_by=(Prompt.project_id, Prompt.author_key),
                order_by=(Prompt.created_at, Prompt.id),
            )
            .label("n"),
        )
        .where(Prompt.project_id.in_(project_ids))
        .subquery()
    )
    return set(session.scalars(select(numbered.c.id).where(numbered.c.n > cap)))


# --- Counting (for progress) -------------------------------------------------------------------


def count_records(session: Session, selection: Selection) -> int:
    """Records the filters select, before the per-author cap (an upper bound for progress)."""
    total = 0
    for query in (_ppo_query(selection), _sft_query(selection), _rm_query(selection)):
        total += session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return total


# --- Shared pieces ---------------------------------------------------------------------------

PROMPT_COLUMNS = (
    Prompt.id,
    Prompt.external_id,
    Prompt.split,
    Prompt.kind,
    Prompt.category,
    Prompt.language,
    Prompt.author_key,
)


def _window(query: Select, created_at: Any, request: ExportRequest) -> Select:
    if request.since is not None:
        query = query.where(created_at >= request.since)
    if request.until is not None:
        query = query.where(created_at < request.until)
    return query


def _labelers(query: Select, selection: Selection) -> Select:
    groups = set(selection.request.labeler_groups)
    people = and_(User.role != IMPORTED_ROLE, User.labeler_group.in_(groups - {"imported"}))
    query = query.where(or_(people, User.role == IMPORTED_ROLE) if "imported" in groups else people)
    if selection.excluded_labeler_ids:
        query = query.where(User.id.not_in(selection.excluded_labeler_ids))
    return query


def _usable_prompts() -> Any:
    """Prompts fit for training data: not waiting for (or dropped in) a personal-data review,
    and not the researchers' gold or screening prompts."""
    return and_(Prompt.review_state.in_(hygiene.USABLE_STATES), gold.work_prompt_condition())


def _in_projects(selection: Selection) -> Any:
    """The project filter of a query that pages over rankings or demonstrations. Written as
    `project_id + 0` so that no index serves it: SQLite would otherwise start from the
    prompts of the project and sort every page, which makes a whole export quadratic."""
    return (Prompt.project_id + 0).in_(selection.project_ids)


def _prompt_fields(row: Any, selection: Selection) -> Record:
    return {
        "prompt_id": row.external_id or f"p{row.id}",
        "split": row.split,
        "prompt_kind": row.kind,
        "category": row.category,
        "language": row.language,
        "author": selection.pseudonym(row.author_key),
    }


def _pages(session: Session, query: Select, id_column: Any) -> Iterator[list[Any]]:
    """The rows of `query` in pages of BATCH, by increasing `id_column`."""
    last = None
    while True:
        page_query = query if last is None else query.where(id_column > last)
        # Core execution: plain rows, without the ORM's per-row overhead.
        rows = session.connection().execute(page_query.order_by(id_column).limit(BATCH)).all()
        if not rows:
            return
        yield rows
        last = rows[-1].record_id


# --- PPO: prompts ------------------------------------------------------------------------------


def _ppo_query(selection: Selection) -> Select:
    query = select(
        Prompt.id.label("record_id"),
        *PROMPT_COLUMNS,
        Prompt.instruction,
        Prompt.few_shot_pairs,
        Prompt.context,
    ).where(Prompt.project_id.in_(selection.project_ids), _usable_prompts())
    return _window(query, Prompt.created_at, selection.request)


def ppo_records(session: Session, selection: Selection) -> Iterator[Record]:
    for rows in _pages(session, _ppo_query(selection), Prompt.id):
        for row in rows:
            if row.id in selection.capped_prompt_ids:
                continue
            yield {
                **_prompt_fields(row, selection),
                "context": prompt_messages(
                    row.kind, row.instruction, row.few_shot_pairs, row.context
                ),
            }


# --- SFT: demonstrations -----------------------------------------------------------------------


def _sft_query(selection: Selection) -> Select:
    query = (
        select(
            Demonstration.id.label("record_id"),
            *PROMPT_COLUMNS,
            Demonstration.messages,
            Demonstration.ranking_id,
            Demonstration.time_spent_ms,
            User.id.label("labeler_id"),
            User.role,
        )
        .join(Prompt, Prompt.id == Demonstration.prompt_id)
        .join(User, User.id == Demonstration.labeler_id)
        .where(_in_projects(selection), _usable_prompts())
    )
    if not selection.request.include_too_fast:
        query = query.where(pace.counted_demonstration_condition())
    return _labelers(_window(query, Demonstration.created_at, selection.request), selection)


def sft_records(session: Session, selection: Selection) -> Iterator[Record]:
    for rows in _pages(session, _sft_query(selection), Demonstration.id):
        for row in rows:
            if row.id in selection.capped_prompt_ids:
                continue
            if row.role == IMPORTED_ROLE:
                origin = "imported"
            else:
                origin = "ranking_better_answer" if row.ranking_id else "demonstration"
            yield {
                **_prompt_fields(row, selection),
                "id": f"d{row.record_id}",
                "messages": row.messages,
                "labeler": selection.pseudonym(f"user:{row.labeler_id}"),
                "origin": origin,
                "time_spent_ms": row.time_spent_ms,
            }


# --- RM: rankings ------------------------------------------------------------------------------


def _rm_query(selection: Selection) -> Select:
    query = (
        select(
            Ranking.id.label("record_id"),
            *PROMPT_COLUMNS,
            Prompt.instruction,
            Prompt.few_shot_pairs,
            Prompt.context,
            Ranking.all_bad,
            Ranking.time_spent_ms,
            User.id.label("labeler_id"),
            User.role,
            User.labeler_group,
        )
        .join(Item, Item.id == Ranking.item_id)
        .join(Prompt, Prompt.id == Item.prompt_id)
        .join(User, User.id == Ranking.labeler_id)
        .where(_in_projects(selection), Prompt.review_state.in_(hygiene.USABLE_STATES))
    )
    purposes = ["work", "gold"] if selection.request.include_gold else ["work"]
    query = query.where(Item.purpose.in_(purposes))
    if not selection.request.include_too_fast:
        query = query.where(pace.counted_ranking_condition())
    return _labelers(_window(query, Ranking.created_at, selection.request), selection)


def rm_records(session: Session, selection: Selection) -> Iterator[Record]:
    for rows in _pages(session, _rm_query(selection), Ranking.id):
        completions = _ranked_completions(session, rows[0].record_id, rows[-1].record_id)
        for row in rows:
            if row.id in selection.capped_prompt_ids:
                continue
            yield {
                **_prompt_fields(row, selection),
                "id": f"r{row.record_id}",
                "context": prompt_messages(
                    row.kind, row.instruction, row.few_shot_pairs, row.context
                ),
                "completions": completions[row.record_id],
                "labeler": selection.pseudonym(f"user:{row.labeler_id}"),
                "labeler_group": labeler_group(row.role, row.labeler_group),
                "all_bad": row.all_bad,
                "time_spent_ms": row.time_spent_ms,
            }


def _ranked_completions(session: Session, first: int, last: int) -> dict[int, list[Record]]:
    """The ranked completions of the rankings with ids in [first, last], best first."""
    names = sorted(FLAGS)
    flags = [getattr(RankingEntry, name) for name in names]
    rows = (
        session.connection()
        .execute(
            select(
                RankingEntry.ranking_id,
                RankingEntry.rank,
                RankingEntry.quality,
                *flags,
                Completion.id,
                Completion.external_id,
                Completion.text,
                Completion.model_name,
            )
            .join(Completion, Completion.id == RankingEntry.completion_id)
            .where(RankingEntry.ranking_id.between(first, last))
            .order_by(RankingEntry.ranking_id, RankingEntry.rank, Completion.position)
        )
        .all()
    )
    found: dict[int, list[Record]] = {}
    for ranking_id, rank, quality, *flags_on, cid, external_id, text, model in rows:
        found.setdefault(ranking_id, []).append(
            {
                "id": external_id or f"c{cid}",
                "text": text,
                "rank": rank,
                "quality": quality,
                "flags": [n for n, on in zip(names, flags_on, strict=True) if on]
                if any(flags_on)
                else [],
                "model": model,
            }
        )
    return found


# --- The pairs view ----------------------------------------------------------------------------


def pairs(record: Record, mode: str) -> Iterator[Record]:
    """prompt/chosen/rejected pairs of one RM record: every ordered pair (`all`), or the best
    answers against each of the others (`best_vs_rest`). Ties give no pair."""
    completions = record["completions"]
    best = completions[0]["rank"]
    for better, worse in combinations(completions, 2):  # best first, so `better` ranks higher
        if better["rank"] == worse["rank"]:
            continue
        if mode == "best_vs_rest" and better["rank"] != best:
            continue
        yield {
            "prompt": record["context"],
            "chosen": [{"role": "assistant", "content": better["text"]}],
            "rejected": [{"role": "assistant", "content": worse["text"]}],
        }
