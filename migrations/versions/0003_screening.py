"""screening: candidates, labeler groups, gold answers, screening tests, too-fast flags

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 10:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('labeler_group', sa.String(length=16), nullable=False, server_default='training'))

    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('gold_percent', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('min_task_ms', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('min_task_median_percent', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('too_fast_review_count', sa.Integer(), nullable=False, server_default='5'))

    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose', sa.String(length=10), nullable=False, server_default='work'))

    with op.batch_alter_table('rankings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('too_fast', sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table('demonstrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('too_fast', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('admin_grade', sa.Integer(), nullable=True))

    op.create_table(
        'gold_answers',
        sa.Column('item_id', sa.Integer(), nullable=False),
        sa.Column('ranks', sa.JSON(), nullable=True),
        sa.Column('flags', sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(['item_id'], ['items.id']),
        sa.PrimaryKeyConstraint('item_id'),
    )
    op.create_table(
        'screening_tests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('min_agreement_percent', sa.Integer(), nullable=False),
        sa.Column('min_flag_accuracy_percent', sa.Integer(), nullable=False),
        sa.Column('min_demonstration_grade', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('project_id'),
    )
    op.create_table(
        'screening_attempts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('candidate_id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=10), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['candidate_id'], ['users.id']),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('candidate_id'),
    )
    with op.batch_alter_table('screening_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_screening_attempts_project_id'), ['project_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('screening_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_screening_attempts_project_id'))
    op.drop_table('screening_attempts')
    op.drop_table('screening_tests')
    op.drop_table('gold_answers')

    with op.batch_alter_table('demonstrations', schema=None) as batch_op:
        batch_op.drop_column('admin_grade')
        batch_op.drop_column('too_fast')

    with op.batch_alter_table('rankings', schema=None) as batch_op:
        batch_op.drop_column('too_fast')

    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_column('purpose')

    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('too_fast_review_count')
        batch_op.drop_column('min_task_median_percent')
        batch_op.drop_column('min_task_ms')
        batch_op.drop_column('gold_percent')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('labeler_group')
