"""replies and alerts in the outbox, bot state

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('conversation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bot_answered_state', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('handed_off', sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('payload', sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('reply', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.alter_column('update_id', existing_type=sa.INTEGER(), nullable=True)
        batch_op.alter_column('rendition_id', existing_type=sa.INTEGER(), nullable=True)
        batch_op.create_unique_constraint('uq_delivery_message_id', ['message_id'])
        batch_op.create_foreign_key('fk_delivery_message_id', 'message', ['message_id'], ['id'])

    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notes', sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=''))
        batch_op.add_column(
            sa.Column('answer_conversations', sa.Boolean(), nullable=False, server_default=sa.true())
        )

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('delivery_status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default='')
        )
        batch_op.add_column(sa.Column('delivery_error', sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=''))
        batch_op.create_index('ix_message_intent_created_at', ['intent', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_index('ix_message_intent_created_at')
        batch_op.drop_column('delivery_error')
        batch_op.drop_column('delivery_status')

    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.drop_column('answer_conversations')
        batch_op.drop_column('notes')

    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_constraint('fk_delivery_message_id', type_='foreignkey')
        batch_op.drop_constraint('uq_delivery_message_id', type_='unique')
        batch_op.alter_column('rendition_id', existing_type=sa.INTEGER(), nullable=False)
        batch_op.alter_column('update_id', existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column('reply')
        batch_op.drop_column('payload')
        batch_op.drop_column('message_id')

    with op.batch_alter_table('conversation', schema=None) as batch_op:
        batch_op.drop_column('handed_off')
        batch_op.drop_column('bot_answered_state')
