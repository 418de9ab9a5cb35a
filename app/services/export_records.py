"""The records of an export snapshot, read from the database in stable order and constant
memory. Each kind of record is read in pages: the rows whose id (of the ranking, demonstration
or prompt) lies in the next range of BATCH ids, in id order. Ranges rather than LIMIT keep
both databases on one plan, starting from the primary key, however large the tables (with
LIMIT, PostgreSQL sorted every page of a join). Each page query is compiled once per
export. A page of rankings takes one more query for the entries and completions of all its
rankings (SQLite: aggregated by the database into one JSON text per ranking, parsed by orjson,
far cheaper than K rows each). Rows come back as plain tuples (SQLite: JSON arrays); nothing
per record goes through the ORM.

A background thread reads the pages one ahead (`read_ahead`), so that the database works on
the next page while the export's thread turns the current one into records.

Records hold no timestamps; people appear as pseudonyms (an HMAC of their author key with the
deployment's secret key: stable across snapshots of one deployment, meaningless elsewhere).
"""

import hashlib
import hmac
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import combinations, groupby
from operator import itemgetter
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    JSON,
    Connection,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.exc import DataError
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
from app.services import export_agreement, gold, hygiene, pace
from app.services.imports import IMPORTED_ROLE

BATCH = 2500
Record = dict[str, Any]
_Page = TypeVar("_Page")


def labeler_group(role: str, group: str) -> str:
    """The group of a labeler in exports: imported data, or the labeler's group."""
    return "imported" if role == IMPORTED_ROLE else group


@dataclass
class Selection:
    """An ExportRequest resolved against the database."""

    request: ExportRequest
    secret: bytes
    dialect: str  # the database's ("sqlite", "postgresql"): see _in_projects
    project_ids: list[int]
    excluded_labeler_ids: set[int]  # by name, and below the agreement threshold
    low_agreement_labelers: int  # how many the agreement threshold left out
    capped_prompt_ids: set[int]  # prompts beyond their author's cap
    researcher_prompt_ids: set[int]  # prompts of gold and screening items
    _pseudonyms: dict[str, str] = field(default_factory=dict)
    _labelers: dict[int, str] = field(default_factory=dict)

    def pseudonym(self, key: str) -> str:
        if key not in self._pseudonyms:
            digest = hmac.new(self.secret, key.encode(), hashlib.sha256).hexdigest()
            self._pseudonyms[key] = f"u-{digest[:16]}"
        return self._pseudonyms[key]

    def labeler_pseudonym(self, labeler_id: int) -> str:
        """The pseudonym of a labeler by user id (cached by id: asked once per record)."""
        if labeler_id not in self._labelers:
            self._labelers[labeler_id] = self.pseudonym(f"user:{labeler_id}")
        return self._labelers[labeler_id]


def check_request(session: Session, request: ExportRequest) -> dict[str, int]:
    """Check the request against the data: its project and the users it names exist. Returns
    the labelers it leaves out by name, as {username: user id}."""
    if request.project_id is not None and session.get(Project, request.project_id) is None:
        raise NotFound(f"There is no project {request.project_id}.")
    excluded = dict(
        session.execute(
            select(User.username, User.id).where(User.username.in_(request.exclude_labelers))
        ).all()
    )
    unknown = sorted(set(request.exclude_labelers) - set(excluded))
    if unknown:
        raise InvalidInput(f"There is no user named {', '.join(unknown)}.")
    return excluded


def select_data(session: Session, request: ExportRequest, secret_key: str) -> Selection:
    """Check the request against the data and resolve its filters."""
    excluded = check_request(session, request)
    project_ids = (
        [request.project_id]
        if request.project_id is not None
        else list(session.scalars(select(Project.id).order_by(Project.id)))
    )
    low_agreement = (
        export_agreement.labelers_below(session, project_ids, request.min_labeler_agreement)
        if request.min_labeler_agreement is not None
        else set()
    )
    return Selection(
        request=request,
        secret=secret_key.encode(),
        dialect=session.get_bind().dialect.name,
        project_ids=project_ids,
        excluded_labeler_ids=set(excluded.values()) | low_agreement,
        low_agreement_labelers=len(low_agreement),
        capped_prompt_ids=_capped(session, project_ids, request.max_prompts_per_author),
        researcher_prompt_ids=gold.researcher_prompt_ids(session, project_ids),
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


def count_records_and_overlap_items(session: Session, selection: Selection) -> tuple[int, set[int]]:
    """Records the filters select, before the per-author cap (an upper bound for progress),
    and the items that two or more of the selected rankings share (for the agreement
    summary). One pass over the rankings counts them by item, for both."""
    total = 0
    for query in (_ppo_query(selection), _sft_query(selection)):
        total += session.scalar(select(func.count()).select_from(query.subquery())) or 0
    per_item = (
        rm_query(selection)
        .with_only_columns(Ranking.item_id, func.count().label("rankings"))
        .group_by(Ranking.item_id)
        .subquery()
    )
    postgres = selection.dialect == "postgresql"
    items = (func.array_agg if postgres else func.json_group_array)(per_item.c.item_id)
    rankings, shared = session.execute(
        select(
            func.coalesce(func.sum(per_item.c.rankings), 0),
            items.filter(per_item.c.rankings >= 2),
        )
    ).one()
    # PostgreSQL: an array, or None for no items; SQLite: JSON text.
    shared = orjson.loads(shared) if isinstance(shared, str) else shared or []
    return total + rankings, set(shared)


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
    """Prompts not waiting for (or dropped in) a personal-data review. (Prompts fit for
    training data are also not the researchers': see Selection.researcher_prompt_ids.)"""
    return Prompt.review_state.in_(hygiene.USABLE_STATES)


def _in_projects(selection: Selection) -> Any:
    """The project filter of a query that pages over rankings or demonstrations. On SQLite
    written as `project_id + 0` so that no index serves it: SQLite would otherwise start from
    the prompts of the project and sort every page, which makes a whole export quadratic.
    Not on PostgreSQL, which cannot estimate how many rows such an expression keeps (it
    guesses 0.5 %), and then joins each page's rows to every labeler (1M rankings: 36 ms
    a page instead of 19 ms)."""
    column = Prompt.project_id + 0 if selection.dialect == "sqlite" else Prompt.project_id
    return column.in_(selection.project_ids)


def _prompt_fields(
    selection: Selection,
    prompt_id: int,
    external_id: str | None,
    split: str,
    kind: str,
    category: str,
    language: str,
    author_key: str,
) -> Record:
    """The start of every record, from the PROMPT_COLUMNS of its row."""
    return {
        "prompt_id": external_id or f"p{prompt_id}",
        "split": split,
        "prompt_kind": kind,
        "category": category,
        "language": language,
        "author": selection.pseudonym(author_key),
    }


def _pages(session: Session, query: Select, id_column: Any) -> Iterator[Sequence[Sequence[Any]]]:
    """The rows of `query` in pages by ranges of BATCH values of `id_column` (its first
    column), in order, read ahead in a background thread (see `read_ahead`). Records unpack
    the rows as tuples, in the order of their query's columns."""
    return read_ahead(_pages_in_order(session, query, id_column))


def _pages_in_order(
    session: Session, query: Select, id_column: Any
) -> Iterator[Sequence[Sequence[Any]]]:
    connection = session.connection()
    read_page = page_reader(connection, query, id_column)
    for start in _page_starts(connection, id_column):
        if rows := read_page(start):
            yield rows


def _page_starts(connection: Connection, id_column: Any) -> range:
    """The first id of each page of BATCH ids of `id_column`'s table."""
    low, high = connection.execute(select(func.min(id_column), func.max(id_column))).one()
    return range(low, high + 1, BATCH) if low is not None else range(0)


PageReader = Callable[[int], Sequence[Sequence[Any]]]


def page_reader(connection: Connection, query: Select, id_column: Any) -> PageReader:
    """Reads a page of `query`: given its first id, the rows whose `id_column` lies in the
    BATCH ids from there, ordered by their first column (see _rows). On PostgreSQL the query
    is compiled here, once, rather than for every page (2 s of a million-ranking export)."""
    page = query.where(_in_page(id_column))
    if connection.dialect.name == "sqlite":
        return lambda start: _rows(connection, page, _page_bounds(start))
    read = _driver_reader(connection, page.order_by(page.selected_columns[0]))
    return lambda start: read(_page_bounds(start))


def _in_page(id_column: Any) -> Any:
    """`id_column` in the bounds of a page, the bound parameters page_start and page_end (with
    a value for now, without which a query with IN lists would not compile before a page)."""
    return and_(id_column >= bindparam("page_start", 0), id_column < bindparam("page_end", 0))


def _page_bounds(start: int) -> dict[str, int]:
    """The values of the bound parameters page_start and page_end of a page from `start`."""
    return {"page_start": start, "page_end": start + BATCH}


def _rows(connection: Connection, query: Select, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
    """SQLite: the rows of one page, ordered by their first column, with `params` for the
    query's bound parameters.

    On SQLite the database returns the whole page as one JSON text: its driver takes the GIL
    back after each row it reads, and a reading thread that waits for the GIL once per row
    while the export's thread turns rows into records would take seconds per page. JSON
    columns come back parsed, as they would from a plain query; booleans come back as 0 or 1.
    A page longer than SQLite's longest text (1 GB unless configured otherwise: only pages of
    enormous texts) is read row by row instead.
    """
    page = query.subquery()
    cells = [func.json(c) if isinstance(c.type, JSON) else c for c in page.columns]
    whole_page = select(func.json_group_array(func.json_array(*cells)))
    try:
        text = connection.execute(whole_page, params).scalar()
    except DataError:  # "string or blob too big"
        return connection.execute(query.order_by(query.selected_columns[0]), params).all()
    rows = orjson.loads(text)
    rows.sort(key=itemgetter(0))  # an aggregate's order is not guaranteed
    return rows


def _driver_reader(
    connection: Connection, query: Select
) -> Callable[[dict[str, Any]], list[tuple[Any, ...]]]:
    """PostgreSQL: reads the rows of `query`, compiled once, for values of some of its bound
    parameters. As the driver's own tuples: SQLAlchemy's Row objects cost as much again as
    psycopg's reading, for the millions of rows of an export. In binary format, which spares
    both the server and psycopg turning numbers into text and back."""
    compiled = query.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    sql, defaults = str(compiled), compiled.params
    driver = connection.connection.driver_connection

    def read(params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with driver.cursor(binary=True) as cursor:  # type: ignore[union-attr]
            cursor.execute(sql, defaults | params)
            return cursor.fetchall()

    return read


def read_ahead(pages: Iterator[_Page], depth: int = 1) -> Iterator[_Page]:
    """The items of `pages`, read by a background thread up to `depth` items ahead.

    The database works on the next pages (PostgreSQL in its own process; SQLite's driver
    without the GIL) while this thread turns the current one into records. The reading
    thread uses the session alone until the pages run out or the caller stops early: closing
    this generator (or dropping it) waits for the thread to end."""
    ahead: queue.Queue[tuple[bool, Any]] = queue.Queue(depth)
    stop = threading.Event()

    def read() -> None:
        try:
            for page in pages:
                if not _put(ahead, (True, page), stop):
                    return
            _put(ahead, (False, None), stop)
        except BaseException as exc:  # handed to the reader of the pages
            _put(ahead, (False, exc), stop)
        finally:
            if isinstance(pages, Generator):
                pages.close()  # here, in the thread that read them (a reader of its own stops)

    reader = threading.Thread(target=read, name="export-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            more, page = ahead.get()
            if not more:
                if page is not None:
                    raise page
                return
            yield page
    finally:
        stop.set()
        reader.join()


def _put(
    ahead: queue.Queue[tuple[bool, Any]], item: tuple[bool, Any], stop: threading.Event
) -> bool:
    """Put `item` once there is room, unless the reader of the pages stopped; whether put."""
    while not stop.is_set():
        try:
            ahead.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


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
    left_out = selection.capped_prompt_ids | selection.researcher_prompt_ids
    for rows in _pages(session, _ppo_query(selection), Prompt.id):
        for (
            _record_id,
            prompt_id,
            external_id,
            split,
            kind,
            category,
            language,
            author_key,
            instruction,
            few_shot_pairs,
            context,
        ) in rows:
            if prompt_id in left_out:
                continue
            record = _prompt_fields(
                selection, prompt_id, external_id, split, kind, category, language, author_key
            )
            record["context"] = prompt_messages(kind, instruction, few_shot_pairs, context)
            yield record


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
    left_out = selection.capped_prompt_ids | selection.researcher_prompt_ids
    for rows in _pages(session, _sft_query(selection), Demonstration.id):
        for (
            record_id,
            prompt_id,
            external_id,
            split,
            kind,
            category,
            language,
            author_key,
            messages,
            ranking_id,
            time_spent_ms,
            labeler_id,
            role,
        ) in rows:
            if prompt_id in left_out:
                continue
            if role == IMPORTED_ROLE:
                origin = "imported"
            else:
                origin = "ranking_better_answer" if ranking_id else "demonstration"
            record = _prompt_fields(
                selection, prompt_id, external_id, split, kind, category, language, author_key
            )
            record["id"] = f"d{record_id}"
            record["messages"] = messages
            record["labeler"] = selection.labeler_pseudonym(labeler_id)
            record["origin"] = origin
            record["time_spent_ms"] = time_spent_ms
            yield record


# --- RM: rankings ------------------------------------------------------------------------------


def rm_query(selection: Selection) -> Select:
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
            Ranking.item_id,
            func.date(Ranking.created_at),
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


def rm_records(
    session: Session,
    selection: Selection,
    overlap: export_agreement.OverlapRankings | None = None,
    entries_session: Session | None = None,
) -> Iterator[Record]:
    """The RM records; `overlap`, if given, collects the rankings of its items on the way
    (see _rm_pages for `entries_session`)."""
    capped = selection.capped_prompt_ids
    labeler_pseudonym = selection.labeler_pseudonym
    for rows, completions in read_ahead(_rm_pages(session, selection, entries_session)):
        for (
            record_id,
            prompt_id,
            external_id,
            split,
            kind,
            category,
            language,
            author_key,
            instruction,
            few_shot_pairs,
            context,
            all_bad,
            time_spent_ms,
            labeler_id,
            role,
            group,
            item_id,
            day,
        ) in rows:
            if prompt_id in capped:
                continue
            entries = completions[record_id]
            if isinstance(entries, str):
                # SQLite's JSON text, parsed one ranking at a time rather than for the whole
                # page (its objects then die young, which keeps the garbage collector's work
                # small), and sorted by rank, then position (unique within an item).
                entries = sorted(orjson.loads(entries))
            if overlap is not None and item_id in overlap.items:
                overlap.add(item_id, labeler_id, day, entries)
            record = _prompt_fields(
                selection, prompt_id, external_id, split, kind, category, language, author_key
            )
            record["id"] = f"r{record_id}"
            record["context"] = prompt_messages(kind, instruction, few_shot_pairs, context)
            record["completions"] = _completion_records(entries)
            record["labeler"] = labeler_pseudonym(labeler_id)
            record["labeler_group"] = labeler_group(role, group)
            record["all_bad"] = bool(all_bad)  # 0 or 1 from SQLite's JSON pages
            record["time_spent_ms"] = time_spent_ms
            yield record


FLAG_NAMES = sorted(FLAGS)
# The sorted flag names of each bit mask (bit i: FLAG_NAMES[i]); tuples, shared by every
# completion with that mask (JSON writes them as arrays).
_FLAGS_OF_MASK = [
    tuple(name for bit, name in enumerate(FLAG_NAMES) if mask >> bit & 1)
    for mask in range(1 << len(FLAG_NAMES))
]


def _completion_records(entries: Sequence[Sequence[Any]]) -> list[Record]:
    """The completions of an RM record, from its ranking's entry rows, best first."""
    return [
        {
            "id": external_id or f"c{completion_id}",
            "text": text,
            "rank": rank,
            "quality": quality,
            "flags": _FLAGS_OF_MASK[mask],
            "model": model,
        }
        for _, rank, _, completion_id, external_id, text, quality, mask, model in entries
    ]


def _rm_pages(
    session: Session, selection: Selection, entries_session: Session | None
) -> Iterator[tuple[Sequence[Sequence[Any]], dict[int, Any]]]:
    """The pages of rm_query's rows, each with its rankings' entries. With `entries_session`
    (PostgreSQL: a second connection on the same snapshot) a thread of its own reads the
    entries, so that two server processes work at once."""
    connection = session.connection()
    read_page = page_reader(connection, rm_query(selection), Ranking.id)
    starts = _page_starts(connection, Ranking.id)
    read_entries = _entries_reader(entries_session.connection() if entries_session else connection)
    entries = (read_entries(start) for start in starts)
    if entries_session is not None:
        entries = read_ahead(entries)
    for start, completions in zip(starts, entries, strict=True):
        if rows := read_page(start):
            yield rows, completions


def _entries_reader(connection: Connection) -> Callable[[int], dict[int, Any]]:
    """Reads the entries of a page of rankings (given its first id), by ranking: _entry_columns
    rows, best first, on PostgreSQL; on SQLite their JSON text, in no order (see rm_records)."""
    if connection.dialect.name == "postgresql":
        return _entry_rows_reader(connection)
    return lambda start: _entry_texts(connection, start, start + BATCH - 1)


def _entry_columns() -> tuple[Any, ...]:
    """A ranking's entries: ranking id, rank, completion position, id, external id, text,
    quality, flag mask, model (rows in this order sort best first)."""
    mask = sum(
        (case((getattr(RankingEntry, n), 1 << bit), else_=0) for bit, n in enumerate(FLAG_NAMES)),
        start=literal(0),
    )
    return (
        RankingEntry.ranking_id,
        RankingEntry.rank,
        Completion.position,
        Completion.id,
        Completion.external_id,
        Completion.text,
        RankingEntry.quality,
        mask,
        Completion.model_name,
    )


def _entry_rows_reader(connection: Connection) -> Callable[[int], dict[int, list[Any]]]:
    """PostgreSQL: the entries as the rows of one join, in order. (Aggregating them into JSON
    took its server twice as long as sending the rows.)"""
    query = (
        select(*_entry_columns())
        .join(Completion, Completion.id == RankingEntry.completion_id)
        .where(_in_page(RankingEntry.ranking_id))
        .order_by(RankingEntry.ranking_id, RankingEntry.rank, Completion.position)
    )
    read = _driver_reader(connection, query)

    def entries(start: int) -> dict[int, list[Any]]:
        rows = read(_page_bounds(start))
        return {ranking_id: list(group) for ranking_id, group in groupby(rows, itemgetter(0))}

    return entries


def _entry_texts(connection: Connection, first: int, last: int) -> dict[int, str]:
    """SQLite: each ranking's entries aggregated into one JSON array (far cheaper to read than
    K rows each; a subquery per ranking, so that SQLite looks them up by index), and those of
    the whole page joined into one text, for the reason in _rows (JSON holds no line breaks).
    The aggregate is unordered (SQLite before 3.44 cannot order inside one)."""
    entries = (
        select(func.json_group_array(func.json_array(*_entry_columns())))
        .select_from(RankingEntry)
        .join(Completion, Completion.id == RankingEntry.completion_id)
        .where(RankingEntry.ranking_id == Ranking.id)
        .scalar_subquery()
    )
    rankings = Ranking.id.between(first, last)
    lines = func.group_concat(func.printf("%d %s", Ranking.id, entries), "\n")
    try:
        text = connection.execute(select(lines).where(rankings)).scalar()
    except DataError:  # longer than SQLite's longest text: one row per ranking (see _rows)
        return dict(connection.execute(select(Ranking.id, entries).where(rankings)).all())
    parts = (line.partition(" ") for line in text.split("\n")) if text else ()
    return {int(ranking_id): row for ranking_id, _, row in parts}


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
