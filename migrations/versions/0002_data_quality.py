"""data quality: overlap, prompt hygiene (dedup keys, per-user cap, PII review)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:02:49.318197
"""

import re

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# A copy of app.services.hygiene.dedup_key as it was when this migration was written.
DEDUP_KEY_CHARS = 400


def _dedup_key(text: str) -> bytes:
    return re.sub(r"\s+", " ", text.casefold()).strip()[:DEDUP_KEY_CHARS].encode("utf-8")


def _rendered(instruction: str, kind: str, pairs: list | None) -> str:
    if kind != "few_shot" or not pairs:
        return instruction
    shots = "\n\n".join(f"Q: {p['query']}\nA: {p['response']}" for p in pairs)
    return f"{instruction}\n\n{shots}"


def upgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overlap_percent', sa.Integer(), nullable=False, server_default='10'))
        batch_op.add_column(sa.Column('overlap_annotations', sa.Integer(), nullable=False, server_default='2'))
        batch_op.add_column(sa.Column('ranking_items_queued', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('max_prompts_per_user', sa.Integer(), nullable=False, server_default='200'))
        batch_op.add_column(sa.Column('dedup_min_prefix', sa.Integer(), nullable=False, server_default='100'))
        batch_op.add_column(sa.Column('dedup_prefix_percent', sa.Integer(), nullable=False, server_default='90'))

    with op.batch_alter_table('prompts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('user_key', sa.String(length=140), nullable=True))
        batch_op.add_column(sa.Column('dedup_key', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('review_state', sa.String(length=8), nullable=False, server_default='clear'))
        batch_op.add_column(sa.Column('pii_findings', sa.JSON(), nullable=True))
        batch_op.create_index('ix_prompts_project_dedup_key', ['project_id', 'dedup_key'], unique=False)
        batch_op.create_index('ix_prompts_project_user_key', ['project_id', 'user_key', 'id'], unique=False)

    # Existing data: number the ranking items queued so far, key prompts by user and prefix.
    op.execute(
        "UPDATE projects SET ranking_items_queued = (SELECT count(*) FROM items "
        "WHERE items.project_id = projects.id AND items.kind = 'ranking')"
    )
    op.execute("UPDATE prompts SET user_key = 'user:' || author_id WHERE author_id IS NOT NULL")
    op.execute(
        "UPDATE prompts SET user_key = 'external:' || external_user_id "
        "WHERE author_id IS NULL AND external_user_id IS NOT NULL"
    )
    connection = op.get_bind()
    prompts = sa.table(
        'prompts',
        sa.column('id', sa.Integer),
        sa.column('instruction', sa.Text),
        sa.column('kind', sa.String),
        sa.column('few_shot_pairs', sa.JSON),
        sa.column('dedup_key', sa.LargeBinary),
    )
    rows = connection.execute(
        sa.select(prompts.c.id, prompts.c.instruction, prompts.c.kind, prompts.c.few_shot_pairs)
    ).all()
    for row in rows:
        key = _dedup_key(_rendered(row.instruction, row.kind, row.few_shot_pairs))
        connection.execute(prompts.update().where(prompts.c.id == row.id).values(dedup_key=key))


def downgrade() -> None:
    with op.batch_alter_table('prompts', schema=None) as batch_op:
        batch_op.drop_index('ix_prompts_project_user_key')
        batch_op.drop_index('ix_prompts_project_dedup_key')
        batch_op.drop_column('pii_findings')
        batch_op.drop_column('review_state')
        batch_op.drop_column('dedup_key')
        batch_op.drop_column('user_key')

    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('dedup_prefix_percent')
        batch_op.drop_column('dedup_min_prefix')
        batch_op.drop_column('max_prompts_per_user')
        batch_op.drop_column('ranking_items_queued')
        batch_op.drop_column('overlap_annotations')
        batch_op.drop_column('overlap_percent')
