"""channel pause: a channel whose circuit breaker is open, for `broadcaster deliveries`

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import broadcaster.models

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'channel_pause',
        sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('opened_at', broadcaster.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('next_probe_at', broadcaster.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('process', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.PrimaryKeyConstraint('channel'),
    )


def downgrade() -> None:
    op.drop_table('channel_pause')
