"""dialogue suggestions: each project's suggestion model, suggestions recorded on demonstrations

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 10:00:00

Jobs gain the kind "suggest" and the state "waiting" (for an export snapshot made with the
job); both columns are plain strings long enough already.
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Not a batch operation on SQLite: recreating `projects` would break the foreign keys that
    # point at it, while a nullable column with a REFERENCES clause can be added in place.
    if op.get_bind().dialect.name == 'sqlite':
        op.execute(
            'ALTER TABLE projects ADD COLUMN suggestion_model_id INTEGER '
            'REFERENCES model_versions (id)'
        )
    else:
        op.add_column('projects', sa.Column('suggestion_model_id', sa.Integer(), nullable=True))
        op.create_foreign_key(
            'fk_projects_suggestion_model_id', 'projects', 'model_versions',
            ['suggestion_model_id'], ['id'],
        )

    with op.batch_alter_table('demonstrations', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('suggestions', sa.JSON(), nullable=False, server_default='[]')
        )


def downgrade() -> None:
    with op.batch_alter_table('demonstrations', schema=None) as batch_op:
        batch_op.drop_column('suggestions')

    if op.get_bind().dialect.name == 'sqlite':
        # SQLite cannot drop a column with a foreign key in place: the table is rebuilt (with
        # foreign keys off during migrations, see migrations/env.py).
        with op.batch_alter_table('projects', schema=None) as batch_op:
            batch_op.drop_column('suggestion_model_id')
    else:
        op.drop_constraint('fk_projects_suggestion_model_id', 'projects', type_='foreignkey')
        op.drop_column('projects', 'suggestion_model_id')
