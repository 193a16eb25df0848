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


# One admission to a bot's budget in one round trip (PostgreSQL): the bot's row is locked only
# while the server runs this, never across a worker's network wait (broadcaster/delivery/shared_pacing.py).
PACE_ADMIT = """
CREATE OR REPLACE FUNCTION pace_admit(
    p_scope text, p_ring text, p_spacing float8, p_limit int, p_window float8, p_cost int,
    p_hold float8, p_ttl float8
) RETURNS TABLE (wait float8, taken text[]) LANGUAGE plpgsql AS $$
DECLARE
    v_now float8 := extract(epoch FROM clock_timestamp());
    v_next float8;
    v_slot float8;
    v_free text[];
    v_wait float8;
BEGIN
    INSERT INTO pace_slot (scope, next_grant, expires_at, ring)
    VALUES (p_scope, 0, v_now + p_ttl, '') ON CONFLICT (scope) DO NOTHING;
    SELECT next_grant INTO v_next FROM pace_slot WHERE scope = p_scope FOR UPDATE;
    v_now := extract(epoch FROM clock_timestamp());
    v_slot := greatest(v_next, v_now);
    IF (SELECT count(*) FROM pace_slot WHERE ring = p_ring) < p_limit THEN
        INSERT INTO pace_slot (scope, next_grant, expires_at, ring)
        SELECT p_ring || '#' || i, 0, v_now + p_window + p_ttl, p_ring FROM generate_series(1, p_limit) AS i
        ON CONFLICT (scope) DO NOTHING;
    END IF;
    SELECT array_agg(f.scope) INTO v_free FROM (
        SELECT scope FROM pace_slot WHERE ring = p_ring AND next_grant <= v_slot
        ORDER BY next_grant LIMIT p_cost
    ) AS f;
    IF coalesce(array_length(v_free, 1), 0) < p_cost THEN
        SELECT next_grant - v_now INTO v_wait FROM pace_slot WHERE ring = p_ring
        ORDER BY next_grant OFFSET p_cost - 1 LIMIT 1;
        RETURN QUERY SELECT greatest(coalesce(v_wait, p_window), 0.001), ARRAY[]::text[];
        RETURN;
    END IF;
    UPDATE pace_slot SET next_grant = v_slot + p_hold + p_window,
        expires_at = v_slot + p_hold + p_window + p_ttl WHERE scope = ANY(v_free);
    UPDATE pace_slot SET next_grant = v_slot + p_spacing * p_cost,
        expires_at = v_slot + p_spacing * p_cost + p_ttl WHERE scope = p_scope;
    RETURN QUERY SELECT v_slot - v_now, v_free;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        'pace_slot',
        sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('next_grant', sa.Float(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.Column('ring', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.PrimaryKeyConstraint('scope'),
    )
    op.create_index(op.f('ix_pace_slot_expires_at'), 'pace_slot', ['expires_at'], unique=False)
    op.create_index('ix_pace_slot_ring', 'pace_slot', ['ring', 'next_grant'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(PACE_ADMIT)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP FUNCTION IF EXISTS pace_admit')
    op.drop_index('ix_pace_slot_ring', table_name='pace_slot')
    op.drop_index(op.f('ix_pace_slot_expires_at'), table_name='pace_slot')
    op.drop_table('pace_slot')
