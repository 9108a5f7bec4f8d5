"""Idempotency keys belong to a role and an id ("booth:jkt01-b1", "cso:siti"), not to a bare
id: a booth and a user may share one. The owner column widens to hold the role too.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.alter_column(
            "principal", type_=sa.String(96), existing_type=sa.String(64), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.alter_column(
            "principal", type_=sa.String(64), existing_type=sa.String(96), existing_nullable=False
        )
