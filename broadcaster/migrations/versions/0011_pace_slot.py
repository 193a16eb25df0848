"""pace slot: the shared pacing budget of a deployment's workers on PostgreSQL

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'pace_slot',
        sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('next_grant', sa.Float(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('scope'),
    )
    op.create_index(op.f('ix_pace_slot_expires_at'), 'pace_slot', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_pace_slot_expires_at'), table_name='pace_slot')
    op.drop_table('pace_slot')
