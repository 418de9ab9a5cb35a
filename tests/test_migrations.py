"""The schema exists only through Alembic, and the migrations match the models."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.db import Database
from app.migrate import upgrade
from app.models import Base


def test_upgrade_from_empty_creates_every_table(db: Database) -> None:
    tables = set(sa.inspect(db.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_models_and_migrations_agree(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(db: Database) -> None:
    if db.engine.dialect.name != "sqlite":
        return
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_the_splits_migration_gives_existing_prompts_an_author_and_split(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0001")
    database = Database(url)
    with database.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO projects (id, name, guidelines, k_min, k_max, lease_seconds, "
            "annotations_per_item, created_at, updated_at) "
            "VALUES (1, 'p', '', 4, 9, 60, 1, '2026-01-01', '2026-01-01')"
        )
        for n, user in enumerate(["u1", "u2", "u1", None], start=1):
            connection.execute(
                sa.text(
                    "INSERT INTO prompts (id, project_id, external_user_id, kind, category, "
                    "language, instruction, created_at) "
                    "VALUES (:n, 1, :u, 'plain', 'other', 'en', 'q', '2026-01-01')"
                ),
                {"n": n, "u": user},
            )
    upgrade(url)
    with database.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT author_key, split FROM prompts ORDER BY id").all()
    database.dispose()
    assert [key for key, _ in rows] == ["ext:u1", "ext:u2", "ext:u1", "prompt:4"]
    assert rows[0][1] == rows[2][1] == "train"
