"""snapshots.heartbeat_at: a running export beats; one that stops beating is failed

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 15:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('snapshots') as batch_op:
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('snapshots') as batch_op:
        batch_op.drop_column('heartbeat_at')
