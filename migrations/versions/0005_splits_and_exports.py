"""splits and exports: user-disjoint splits, import provenance, export snapshots

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 11:58:31.483654

Existing prompts get an author key ("user:<id>", "ext:<user id>", or "prompt:<id>" for an
imported prompt without a user) and a split, assigned author by author in order of their first
prompt with the default ratios 0.8 / 0.1 / 0.1 (the rule of app/services/splits.py).
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

SPLITS = ("train", "validation", "test")
DEFAULT_RATIOS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def upgrade() -> None:
    op.create_table('snapshots',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('records_done', sa.Integer(), nullable=False),
    sa.Column('records_total', sa.Integer(), nullable=True),
    sa.Column('counts', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('split_assignments',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('author_key', sa.String(length=200), nullable=False),
    sa.Column('split', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ),
    sa.PrimaryKeyConstraint('project_id', 'author_key')
    )
    with op.batch_alter_table('completions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('external_id', sa.String(length=200), nullable=True))

    with op.batch_alter_table('demonstrations', schema=None) as batch_op:
        batch_op.alter_column('time_spent_ms', existing_type=sa.INTEGER(), nullable=True)

    with op.batch_alter_table('rankings', schema=None) as batch_op:
        batch_op.alter_column('time_spent_ms', existing_type=sa.INTEGER(), nullable=True)

    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('external_id', sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint(
            'uq_items_project_external_id', ['project_id', 'external_id']
        )

    with op.batch_alter_table('projects', schema=None) as batch_op:
        for split in SPLITS:
            batch_op.add_column(sa.Column(
                f'split_{split}', sa.Double(), nullable=False,
                server_default=str(DEFAULT_RATIOS[split]),
            ))

    with op.batch_alter_table('prompts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('author_key', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('split', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('external_id', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('context', sa.JSON(), nullable=True))

    _assign_existing_prompts()

    with op.batch_alter_table('prompts', schema=None) as batch_op:
        batch_op.alter_column('author_key', existing_type=sa.String(length=200), nullable=False)
        batch_op.alter_column('split', existing_type=sa.String(length=10), nullable=False)
        batch_op.create_index(
            'ix_prompts_project_author_key', ['project_id', 'author_key'], unique=False
        )
        batch_op.create_unique_constraint(
            'uq_prompts_project_external_id', ['project_id', 'external_id']
        )


def _assign_existing_prompts() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text(
        "SELECT id, project_id, author_id, external_user_id FROM prompts ORDER BY id"
    )).all()
    assigned: dict[tuple[int, str], str] = {}
    counts: dict[int, dict[str, int]] = {}
    for prompt_id, project_id, author_id, external_user_id in rows:
        if author_id is not None:
            key = f"user:{author_id}"
        elif external_user_id:
            key = f"ext:{external_user_id}"
        else:
            key = f"prompt:{prompt_id}"
        if (project_id, key) not in assigned:
            seen = counts.setdefault(project_id, dict.fromkeys(SPLITS, 0))
            total = sum(seen.values()) + 1
            split = max(
                SPLITS, key=lambda s: (DEFAULT_RATIOS[s] * total - seen[s], -SPLITS.index(s))
            )
            seen[split] += 1
            assigned[project_id, key] = split
            connection.execute(
                sa.text(
                    "INSERT INTO split_assignments (project_id, author_key, split, created_at) "
                    "VALUES (:p, :k, :s, CURRENT_TIMESTAMP)"
                ),
                {"p": project_id, "k": key, "s": split},
            )
        connection.execute(
            sa.text("UPDATE prompts SET author_key = :k, split = :s WHERE id = :id"),
            {"k": key, "s": assigned[project_id, key], "id": prompt_id},
        )


def downgrade() -> None:
    with op.batch_alter_table('prompts', schema=None) as batch_op:
        batch_op.drop_constraint('uq_prompts_project_external_id', type_='unique')
        batch_op.drop_index('ix_prompts_project_author_key')
        batch_op.drop_column('context')
        batch_op.drop_column('external_id')
        batch_op.drop_column('split')
        batch_op.drop_column('author_key')

    with op.batch_alter_table('projects', schema=None) as batch_op:
        for split in reversed(SPLITS):
            batch_op.drop_column(f'split_{split}')

    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_constraint('uq_items_project_external_id', type_='unique')
        batch_op.drop_column('external_id')

    with op.batch_alter_table('rankings', schema=None) as batch_op:
        batch_op.alter_column('time_spent_ms', existing_type=sa.INTEGER(), nullable=False)

    with op.batch_alter_table('demonstrations', schema=None) as batch_op:
        batch_op.alter_column('time_spent_ms', existing_type=sa.INTEGER(), nullable=False)

    with op.batch_alter_table('completions', schema=None) as batch_op:
        batch_op.drop_column('external_id')

    op.drop_table('split_assignments')
    op.drop_table('snapshots')
