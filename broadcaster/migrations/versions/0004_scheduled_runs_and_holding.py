"""scheduled runs, holding messages per incident, longer update kinds

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

from broadcaster.models import UTCDateTime

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'scheduled_run',
        sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('incident_id', sa.Integer(), nullable=True),
        sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('due_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('ran_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['incident_id'], ['incident.id']),
        sa.PrimaryKeyConstraint('key'),
    )
    op.create_index(op.f('ix_scheduled_run_incident_id'), 'scheduled_run', ['incident_id'], unique=False)
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.add_column(sa.Column('holding_messages', sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table('incident_update', schema=None) as batch_op:  # "maintenance_notice" is 18
        batch_op.alter_column('kind', existing_type=sa.VARCHAR(length=16), type_=sa.VARCHAR(length=32))


def downgrade() -> None:
    with op.batch_alter_table('incident_update', schema=None) as batch_op:
        batch_op.alter_column('kind', existing_type=sa.VARCHAR(length=32), type_=sa.VARCHAR(length=16))
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.drop_column('holding_messages')
    op.drop_index(op.f('ix_scheduled_run_incident_id'), table_name='scheduled_run')
    op.drop_table('scheduled_run')
