"""loop health: which dispatch loop or poller a process reported down, for `broadcaster doctor`

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import broadcaster.models

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'loop_health',
        sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('down', sa.Boolean(), nullable=False),
        sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('restarts', sa.Integer(), nullable=False),
        sa.Column('process', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('since', broadcaster.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', broadcaster.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('loop_health')
