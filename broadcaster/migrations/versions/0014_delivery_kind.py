"""delivery kind: each outbox row says what it is (broadcast, answer, alert), not inferred from nulls

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('delivery') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=16), nullable=False, server_default='broadcast'))
    op.execute("UPDATE delivery SET kind = 'answer' WHERE message_id IS NOT NULL")
    op.execute("UPDATE delivery SET kind = 'alert' WHERE message_id IS NULL AND update_id IS NULL")


def downgrade() -> None:
    with op.batch_alter_table('delivery') as batch:
        batch.drop_column('kind')
