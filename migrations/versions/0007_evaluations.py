"""evaluations: comparison items (two completions from two model versions, for one labeler
group) and labelers' choices between them

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 09:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('job_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('labeler_group', sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f('ix_items_job_id'), ['job_id'], unique=False)
        batch_op.create_foreign_key('fk_items_job_id_jobs', 'jobs', ['job_id'], ['id'])

    with op.batch_alter_table('completions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('model_version_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            'fk_completions_model_version_id_model_versions',
            'model_versions',
            ['model_version_id'],
            ['id'],
        )

    op.create_table('comparisons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('labeler_id', sa.Integer(), nullable=False),
    sa.Column('winner_id', sa.Integer(), nullable=True),
    sa.Column('time_spent_ms', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('too_fast', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], ),
    sa.ForeignKeyConstraint(['labeler_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ),
    sa.ForeignKeyConstraint(['winner_id'], ['completions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('task_id')
    )
    with op.batch_alter_table('comparisons', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comparisons_item_id'), ['item_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_comparisons_labeler_id'), ['labeler_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('comparisons', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comparisons_labeler_id'))
        batch_op.drop_index(batch_op.f('ix_comparisons_item_id'))
    op.drop_table('comparisons')

    with op.batch_alter_table('completions', schema=None) as batch_op:
        batch_op.drop_constraint('fk_completions_model_version_id_model_versions', type_='foreignkey')
        batch_op.drop_column('model_version_id')

    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_constraint('fk_items_job_id_jobs', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_items_job_id'))
        batch_op.drop_column('labeler_group')
        batch_op.drop_column('job_id')
