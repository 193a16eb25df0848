"""delivery due index: a claim reads only the live rows it takes, whatever the outbox's size

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_LIVE = sa.text("status IN ('pending', 'sending')")


def upgrade() -> None:
    op.create_index(
        'ix_delivery_due',
        'delivery',
        ['channel', 'next_attempt_at', 'id'],
        unique=False,
        sqlite_where=_LIVE,
        postgresql_where=_LIVE,
    )


def downgrade() -> None:
    op.drop_index('ix_delivery_due', table_name='delivery')
