"""monitor alerts: each alert group a monitor reported, and the draft incident it made

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import broadcaster.models

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'monitor_alert',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('source', sa.String(length=32), nullable=False),
        sa.Column('group_key', sa.String(length=200), nullable=False),
        sa.Column('incident_id', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('summary', sa.String(length=300), nullable=False),
        sa.Column('first_seen_at', broadcaster.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', broadcaster.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['incident_id'], ['incident.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('source', 'group_key', name='uq_monitor_alert_group'),
    )
    op.create_index('ix_monitor_alert_incident_id', 'monitor_alert', ['incident_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_monitor_alert_incident_id', table_name='monitor_alert')
    op.drop_table('monitor_alert')
