"""Front of house (issue 24): every step of a visit (`ticket_events`, the source of the
reports), the visits and daily rollups derived from them (recomputable: `loket reports
rebuild`), and the waiting rooms' display keys.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_events",
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("branch", sa.String(32), nullable=False),
        sa.Column("visit_id", sa.String(40), nullable=False),
        sa.Column("ticket_id", sa.String(40), nullable=True),
        sa.Column("number", sa.String(8), nullable=True),
        sa.Column("category", sa.String(4), nullable=True),
        sa.Column("booth_id", sa.String(64), nullable=True),
        sa.Column("cso_id", sa.String(64), nullable=True),
        sa.Column("session_id", sa.String(64), nullable=True),
        sa.Column("claim_id", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("detail", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name="pk_ticket_events"),
    )
    op.create_index("ix_ticket_events_visit_id", "ticket_events", ["visit_id"])
    op.create_table(
        "visits",
        sa.Column("visit_id", sa.String(40), nullable=False),
        sa.Column("branch", sa.String(32), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("arrived_at", sa.Float, nullable=False),
        sa.Column("number", sa.String(8), nullable=True),
        sa.Column("category", sa.String(4), nullable=True),
        sa.Column("called_at", sa.Float, nullable=True),
        sa.Column("calls", sa.Integer, nullable=False),
        sa.Column("reached_booth_at", sa.Float, nullable=True),
        sa.Column("assigned_at", sa.Float, nullable=True),
        sa.Column("ended_at", sa.Float, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("end_reason", sa.String(32), nullable=True),
        sa.Column("cso_id", sa.String(64), nullable=True),
        sa.Column("handle_s", sa.Float, nullable=False),
        sa.Column("session_open_at", sa.Float, nullable=True),
        sa.Column("claim_id", sa.String(32), nullable=True),
        sa.Column("claim_type", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("visit_id", name="pk_visits"),
    )
    op.create_index("ix_visits_day_branch", "visits", ["day", "branch"])
    op.create_table(
        "report_days",
        sa.Column("branch", sa.String(32), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("figures", sa.Text, nullable=False),
        sa.Column("computed_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("branch", "day", name="pk_report_days"),
    )
    op.create_table(
        "displays",
        sa.Column("display_id", sa.String(64), nullable=False),
        sa.Column("branch", sa.String(32), nullable=False),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("revoked", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("display_id", name="pk_displays"),
    )
    op.create_index("ix_displays_branch", "displays", ["branch"])


def downgrade() -> None:
    op.drop_table("displays")
    op.drop_table("report_days")
    op.drop_table("visits")
    op.drop_table("ticket_events")
