"""drill run: the results of `broadcaster drill`, and the e-mail reply that came back to it

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import broadcaster.models

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'drill_run',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('started_at', broadcaster.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('finished_at', broadcaster.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('ok', sa.Boolean(), nullable=False),
        sa.Column('results', sa.JSON(), nullable=False),
        sa.Column('by', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column('reply_token', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('replied_at', broadcaster.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('reply_from', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('reply_token'),
    )
    op.create_index(op.f('ix_drill_run_finished_at'), 'drill_run', ['finished_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_drill_run_finished_at'), table_name='drill_run')
    op.drop_table('drill_run')
