"""Upgrades with data in the database: for every earlier schema revision, a database built at
that revision and holding representative data (people, a project, prompts of each kind, items,
completions, slots, tasks, rankings, a demonstration, and from the revisions that added them
gold answers, a screening test and attempt, a worker, a job with metrics, model versions, an
export snapshot) is upgraded to the newest revision; every row is still there, the values the
migrations derive are filled in, and the app works on it (log in, use a token, take and rank
a task, write a prompt). Then it is downgraded back to its revision and upgraded again.

Downgrades, per migration:
- 0001 (initial schema): supported; it drops every table (back to an empty database).
- 0002, 0003, 0004, 0006 to 0010: supported; the columns and tables they added go,
  with their values.
- 0005 (splits and exports): supported for databases made in the web app; it fails (and changes
  nothing) once the database holds imported rankings or demonstrations without a time on task,
  which the older schema cannot store.
Seeded rows follow the newest earlier revision; a new table needs rows here (checked below).
"""

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.orm import Session

from app.db import Database
from app.migrate import alembic_config, upgrade
from app.models import Item, Project, Prompt, User
from app.security import hash_api_token, hash_password
from app.services import hygiene, queue, users
from app.services.users import user_for_token
from tests.factories import PASSWORD, make_prompt, make_user, rank_task

REVISIONS = [
    script.revision
    for script in reversed(list(ScriptDirectory.from_config(alembic_config("")).walk_revisions()))
]
EARLIER = REVISIONS[:-1]
TOKEN = "rk_upgrade-test-token"
WORKER_TOKEN = "rk_upgrade-test-worker"
T0 = datetime(2026, 1, 5, 9, 30)
PAIRS = [{"query": "2+2?", "response": "4"}, {"query": "3+3?", "response": "6"}]


def _prompt(pid: int, author_id: int | None, instruction: str, **extra: Any) -> dict[str, Any]:
    kind = extra.pop("kind", "plain")
    pairs = extra.pop("few_shot_pairs", None)
    external = extra.pop("external_user_id", None)
    rendered = Prompt(kind=kind, instruction=instruction, few_shot_pairs=pairs).render()
    user_key = f"user:{author_id}" if author_id else (f"external:{external}" if external else None)
    author_key = f"user:{author_id}" if author_id else (f"ext:{external}" if external else None)
    return {
        "id": pid,
        "project_id": 1,
        "author_id": author_id,
        "external_user_id": external,
        "kind": kind,
        "category": "generation",
        "language": "en",
        "instruction": instruction,
        "use_case": None,
        "few_shot_pairs": pairs,
        "submission_key": f"key-{pid}" if author_id else None,
        "time_spent_ms": 41_000 if author_id else None,
        "created_at": T0,
        "user_key": user_key,
        "dedup_key": hygiene.dedup_key(rendered),
        "review_state": "clear",
        "pii_findings": None,
        "author_key": author_key or f"prompt:{pid}",
        "split": "train",
        "external_id": None,
        "context": None,
        **extra,
    }


def _ranking(rid: int, task_id: int, labeler_id: int, ranks: list[int]) -> dict[str, list]:
    ranking = {
        "id": rid,
        "task_id": task_id,
        "item_id": 2,
        "labeler_id": labeler_id,
        "has_ties": False,
        "all_bad": False,
        "time_spent_ms": 52_000,
        "created_at": T0,
        "too_fast": False,
    }
    entries = [
        {
            "id": (rid - 1) * 4 + n + 1,
            "ranking_id": rid,
            "completion_id": n + 1,
            "rank": rank,
            "quality": 5,
            "fails_instruction": False,
            "hallucination": n == 3,
            "harmful": False,
            "sexual_or_violent": False,
        }
        for n, rank in enumerate(ranks)
    ]
    return {"rankings": [ranking], "ranking_entries": entries}


def _task(tid: int, item_id: int, slot_id: int, labeler_id: int, order: list[int] | None) -> dict:
    return {
        "id": tid,
        "item_id": item_id,
        "slot_id": slot_id,
        "labeler_id": labeler_id,
        "state": "submitted",
        "completion_order": order,
        "served_at": T0,
        "lease_expires_at": T0,
        "finished_at": T0,
        "skip_reason": None,
        "skip_note": None,
    }


def _job(jid: int, kind: str, params: dict[str, Any], steps: int = 1) -> dict[str, Any]:
    """A job that a worker ran to success."""
    return {
        "id": jid,
        "kind": kind,
        "state": "succeeded",
        "params": params,
        "gpus": 1,
        "created_by_id": 1,
        "created_at": T0,
        "worker_id": 1,
        "lease_id": None,
        "lease_expires_at": None,
        "lease_seconds": 60,
        "attempts": 1,
        "cancel_requested": False,
        "started_at": T0,
        "start_step": 0,
        "step": steps,
        "total_steps": steps,
        "last_report_at": T0,
        "finished_at": T0,
        "error": None,
        "log_tail": "",
        "result": {},
    }


def seed_rows() -> dict[str, list[dict[str, Any]]]:
    """Rows for every table, with every column any revision has; each revision takes the
    tables and columns it knows (in this order, so foreign keys resolve)."""
    password = hash_password(PASSWORD)
    people = [(1, "root", "admin"), (2, "lena", "labeler"), (3, "liam", "labeler")]
    people.append((4, "cara", "candidate"))
    first, second = _ranking(1, 2, 2, [1, 2, 3, 4]), _ranking(2, 3, 3, [2, 1, 3, 4])
    source = {"model_name": "gpt-small", "sampling": {"temperature": 0.7}, "external_id": None}
    items = [(1, 1, "demonstration", "work"), (2, 2, "ranking", "work")]
    items += [(3, 3, "ranking", "work"), (4, 4, "ranking", "gold")]
    comparison = {"id": 5, "prompt_id": 3, "kind": "comparison", "purpose": "work", "job_id": 2}
    comparison |= {"project_id": 1, "created_at": T0, "external_id": None}
    slots = [(1, 1, 0, "done", 3), (2, 2, 0, "done", 2), (3, 2, 1, "done", 3)]
    slots += [(4, 3, 0, "open", None), (5, 5, 0, "done", 2)]
    poem = [
        {"role": "user", "content": "Write a poem about the sea."},
        {"role": "assistant", "content": "Waves, and more waves."},
    ]
    return {
        "users": [
            {
                "id": uid,
                "username": name,
                "password_hash": password,
                "role": role,
                "is_active": True,
                "created_at": T0,
                "labeler_group": "training",
            }
            for uid, name, role in people
        ],
        "api_tokens": [
            {
                "id": 1,
                "user_id": 1,
                "name": "script",
                "token_hash": hash_api_token(TOKEN),
                "created_at": T0,
                "revoked_at": None,
            }
        ],
        "login_throttles": [{"username": "nobody", "failures": 2, "locked_until": None}],
        "projects": [
            {
                "id": 1,
                "name": "Poems",
                "guidelines": "# Be *kind*",
                "k_min": 4,
                "k_max": 9,
                "lease_seconds": 1800,
                "annotations_per_item": 2,
                "created_at": T0,
                "updated_at": T0,
                "overlap_percent": 10,
                "overlap_annotations": 2,
                "ranking_items_queued": 3,
                "max_prompts_per_user": 200,
                "dedup_min_prefix": 100,
                "dedup_prefix_percent": 90,
                "gold_percent": 0,
                "min_task_ms": 0,
                "min_task_median_percent": 0,
                "too_fast_review_count": 5,
                "split_train": 0.8,
                "split_validation": 0.1,
                "split_test": 0.1,
            }
        ],
        "workers": [
            {
                "id": 1,
                "name": "gpu-1",
                "token_hash": hash_api_token(WORKER_TOKEN),
                "created_at": T0,
                "revoked_at": None,
                "last_seen_at": T0,
            }
        ],
        "jobs": [
            _job(1, "sft", {"snapshot": "snap-1", "model_version_id": 1, "epochs": 2}, steps=10)
            | {"log_tail": "done\n", "result": {"artifact_path": "/srv/var/jobs/1/model"}},
            _job(
                2, "evaluate", {"project_id": 1, "model_version_a_id": 2, "model_version_b_id": 1}
            ),
        ],
        "job_metrics": [
            {"id": n, "job_id": 1, "seq": n, "step": n * 5, "values": {"loss": 2.0 / n}}
            for n in (1, 2)
        ],
        "model_versions": [
            {
                "id": 1,
                "name": "base",
                "kind": "base",
                "parent_ids": [],
                "snapshot": None,
                "config": {},
                "metrics": {},
                "artifact_path": "/srv/models/base",
                "job_id": None,
                "created_by_id": 1,
                "created_at": T0,
            },
            {
                "id": 2,
                "name": "sft-1",
                "kind": "policy",
                "parent_ids": [1],
                "snapshot": "snap-1",
                "config": {"epochs": 2},
                "metrics": {"loss": 1.0},
                "artifact_path": "/srv/var/jobs/1/model",
                "job_id": 1,
                "created_by_id": 1,
                "created_at": T0,
            },
        ],
        "prompts": [
            _prompt(1, 2, "Write a poem about the sea."),
            _prompt(2, 3, "Answer like the examples.", kind="few_shot", few_shot_pairs=PAIRS),
            _prompt(3, None, "Why is the sky blue?", external_user_id="u-9"),
            _prompt(4, None, "A gold question: rank these."),
        ],
        "items": [
            {
                "id": iid,
                "project_id": 1,
                "prompt_id": pid,
                "kind": kind,
                "created_at": T0,
                "purpose": purpose,
                "external_id": None,
                "job_id": None,
                "labeler_group": None,
            }
            for iid, pid, kind, purpose in items
        ]
        + [{**comparison, "labeler_group": "training"}],
        "completions": [
            {
                "id": (iid - 2) * 4 + n + 1,
                "item_id": iid,
                "position": n,
                "text": f"answer {n} to item {iid}",
                **source,
            }
            for iid in (2, 3, 4)
            for n in range(4)
        ]
        + [
            {
                "id": 13 + n,
                "item_id": 5,
                "position": n,
                "text": f"answer by version {version}",
                **source,
                "model_version_id": version,
            }
            for n, version in enumerate((2, 1))
        ],
        "slots": [
            {
                "id": sid,
                "item_id": iid,
                "index": index,
                "state": state,
                "labeler_id": who,
                "lease_expires_at": None,
            }
            for sid, iid, index, state, who in slots
        ],
        "tasks": [
            _task(1, 1, 1, 3, None),
            _task(2, 2, 2, 2, [3, 1, 4, 2]),
            _task(3, 2, 3, 3, [2, 4, 1, 3]),
            _task(4, 5, 5, 2, [14, 13]),
        ],
        "rankings": first["rankings"] + second["rankings"],
        "ranking_entries": first["ranking_entries"] + second["ranking_entries"],
        "demonstrations": [
            {
                "id": 1,
                "prompt_id": 1,
                "labeler_id": 3,
                "task_id": 1,
                "ranking_id": None,
                "kind": "single",
                "messages": poem,
                "time_spent_ms": 90_000,
                "created_at": T0,
                "too_fast": False,
                "admin_grade": None,
            }
        ],
        "comparisons": [
            {
                "id": 1,
                "task_id": 4,
                "item_id": 5,
                "labeler_id": 2,
                "winner_id": 13,
                "time_spent_ms": 30_000,
                "created_at": T0,
                "too_fast": False,
            }
        ],
        "gold_answers": [{"item_id": 4, "ranks": [1, 2, 3, 4], "flags": [["harmful"], [], [], []]}],
        "screening_tests": [
            {
                "id": 1,
                "project_id": 1,
                "min_agreement_percent": 70,
                "min_flag_accuracy_percent": 80,
                "min_demonstration_grade": 5,
                "created_at": T0,
            }
        ],
        "screening_attempts": [
            {
                "id": 1,
                "candidate_id": 4,
                "project_id": 1,
                "state": "finished",
                "started_at": T0,
                "finished_at": T0,
                "decided_at": None,
            }
        ],
        "snapshots": [
            {
                "id": "snap-1",
                "created_by_id": 1,
                "created_at": T0,
                "finished_at": T0,
                "state": "done",
                "request": {"format": "jsonl"},
                "records_done": 4,
                "records_total": 4,
                "counts": {"sft.train.jsonl": 1},
                "error": None,
            }
        ],
        "split_assignments": [
            {"project_id": 1, "author_key": key, "split": "train", "created_at": T0}
            for key in ("user:2", "user:3", "ext:u-9", "prompt:4")
        ],
        "audit_log": [
            {
                "id": 1,
                "created_at": T0,
                "actor_id": 1,
                "actor_name": "root",
                "action": "user.created",
                "target": "user:2",
                "before": None,
                "after": {"username": "lena", "role": "labeler"},
            }
        ],
    }


def seed(url: str) -> dict[str, int]:
    """Insert the rows that the database's revision has tables and columns for; the counts."""
    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.begin() as connection:
        for name, rows in seed_rows().items():
            if name not in metadata.tables:
                continue
            table = metadata.tables[name]
            connection.execute(
                table.insert(), [{k: v for k, v in r.items() if k in table.c} for r in rows]
            )
            if connection.dialect.name == "postgresql" and _integer_id(table):
                # Explicit ids leave the sequence behind; real rows would have advanced it.
                sequence = f"pg_get_serial_sequence('{name}', 'id')"
                connection.execute(
                    sa.text(f"SELECT setval({sequence}, (SELECT max(id) FROM {name}))")
                )
    counts = table_counts(engine)
    engine.dispose()
    return counts


def _integer_id(table: sa.Table) -> bool:
    return "id" in table.c and isinstance(table.c.id.type, sa.Integer)


def table_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        names = sa.inspect(connection).get_table_names()
        return {
            n: connection.execute(sa.text(f'SELECT count(*) FROM "{n}"')).scalar_one()
            for n in names
            if n != "alembic_version"
        }


@pytest.fixture
def database_at(empty_database) -> Iterator[Callable[[str], tuple[str, dict[str, int]]]]:
    """Builds a database at a revision with the seeded rows; returns its URL and counts."""

    def build(revision: str) -> tuple[str, dict[str, int]]:
        url = empty_database()
        upgrade(url, revision)
        return url, seed(url)

    yield build


@pytest.fixture(params=EARLIER)
def upgraded(request, database_at) -> Iterator[tuple[str, str, dict[str, int], Database]]:
    """A database seeded at an earlier revision and upgraded to the newest."""
    url, seeded = database_at(request.param)
    upgrade(url)
    database = Database(url)
    yield request.param, url, seeded, database
    database.dispose()


def test_every_table_of_the_newest_earlier_revision_gets_rows(database_at) -> None:
    _url, counts = database_at(EARLIER[-1])
    assert [name for name, n in counts.items() if n == 0] == []


def test_an_upgrade_keeps_every_row(upgraded) -> None:
    _revision, _url, seeded, database = upgraded
    after = table_counts(database.engine)
    assert {name: after[name] for name in seeded} == seeded


def test_an_upgrade_keeps_the_values(upgraded) -> None:
    revision, _url, _seeded, database = upgraded
    with database.session(write=False) as session:
        prompts = {p.id: p for p in session.scalars(sa.select(Prompt))}
        assert prompts[2].few_shot_pairs == PAIRS and prompts[3].external_user_id == "u-9"
        assert prompts[1].instruction == "Write a poem about the sea."
        entries = session.execute(
            sa.text("SELECT ranking_id, completion_id, rank FROM ranking_entries ORDER BY id")
        ).all()
        assert [tuple(e) for e in entries] == [
            (1, 1, 1),
            (1, 2, 2),
            (1, 3, 3),
            (1, 4, 4),
            (2, 1, 2),
            (2, 2, 1),
            (2, 3, 3),
            (2, 4, 4),
        ]
        messages = session.execute(sa.text("SELECT messages FROM demonstrations")).scalar_one()
        assert "Waves, and more waves." in str(messages)
        project = session.get(Project, 1)
        assert (project.guidelines, project.annotations_per_item) == ("# Be *kind*", 2)
        if revision >= "0004":
            params = session.execute(sa.text("SELECT params FROM jobs WHERE id = 1")).scalar_one()
            assert "snap-1" in str(params)


def test_an_upgrade_fills_in_what_the_migrations_derive(upgraded) -> None:
    _revision, _url, _seeded, database = upgraded
    with database.session(write=False) as session:
        prompts = list(session.scalars(sa.select(Prompt).order_by(Prompt.id)))
        assert [p.user_key for p in prompts] == ["user:2", "user:3", "external:u-9", None]
        assert [p.author_key for p in prompts] == ["user:2", "user:3", "ext:u-9", "prompt:4"]
        assert all(p.dedup_key == hygiene.dedup_key(p.render()) for p in prompts)
        assert {p.split for p in prompts} <= {"train", "validation", "test"}
        assert session.get(Project, 1).ranking_items_queued == 3
        splits = session.execute(sa.text("SELECT count(*) FROM split_assignments")).scalar_one()
        assert splits == 4


def test_the_app_works_on_an_upgraded_database(upgraded) -> None:
    _revision, _url, _seeded, database = upgraded
    with database.session() as session:
        lena = users.authenticate(session, "lena", PASSWORD, max_failures=5, lockout_seconds=60)
        assert lena.username == "lena"
        assert user_for_token(session, TOKEN).username == "root"
        project = session.get(Project, 1)
        newcomer = make_user(session, username="newcomer")
        task = queue.next_task(session, project, newcomer, "ranking")
        assert task is not None and task.item.prompt.instruction == "Why is the sky blue?"
        ranking = rank_task(session, task, newcomer, [4, 3, 2, 1])
        assert ranking.id == 3
        prompt = make_prompt(session, project, lena)
        assert session.scalar(sa.select(Item).where(Item.prompt_id == prompt.id)).kind == (
            "demonstration"
        )


def test_a_downgrade_to_the_old_revision_and_a_new_upgrade_keep_the_rows(upgraded) -> None:
    revision, url, seeded, database = upgraded
    with database.session() as session:
        make_user(session, username="added-at-head")
    at_head = table_counts(database.engine)
    database.dispose()

    command.downgrade(alembic_config(url), revision)
    engine = sa.create_engine(url)
    assert table_counts(engine) == {name: at_head[name] for name in seeded}
    engine.dispose()

    upgrade(url)
    engine = sa.create_engine(url)
    again = table_counts(engine)
    assert {name: again[name] for name in seeded} == {name: at_head[name] for name in seeded}
    engine.dispose()


def test_a_downgrade_below_0005_refuses_imported_work_without_a_time(database_at) -> None:
    url, _counts = database_at("0005")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE rankings SET time_spent_ms = NULL WHERE id = 1"))
    engine.dispose()

    with pytest.raises(sa.exc.IntegrityError):
        command.downgrade(alembic_config(url), "0004")

    with Session(sa.create_engine(url)) as session:
        version = session.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        assert version == "0005"
        assert session.scalar(sa.select(sa.func.count()).select_from(User)) == 4
