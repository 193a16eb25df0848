"""per-locale incident title and compensation; each update's impact and components

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.add_column(sa.Column('title_translations', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(
            sa.Column('compensation_translations', sa.JSON(), nullable=False, server_default='{}')
        )
    with op.batch_alter_table('incident_update', schema=None) as batch_op:
        # The incident's impact and components as of this update ('' / []: written before 0005).
        batch_op.add_column(
            sa.Column('impact', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default='')
        )
        batch_op.add_column(sa.Column('components', sa.JSON(), nullable=False, server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('incident_update', schema=None) as batch_op:
        batch_op.drop_column('components')
        batch_op.drop_column('impact')
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.drop_column('compensation_translations')
        batch_op.drop_column('title_translations')
