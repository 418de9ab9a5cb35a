"""a partial index on open slots: the head of the queue stays one index seek away

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 13:50:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        'ix_slots_open_item',
        'slots',
        ['item_id'],
        unique=False,
        sqlite_where=sa.text("state = 'open'"),
        postgresql_where=sa.text("state = 'open'"),
    )


def downgrade() -> None:
    op.drop_index('ix_slots_open_item', table_name='slots')
