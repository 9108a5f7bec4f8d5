"""Sessions recorded as evidence (issue 23): recordings (one per session, with its consent
and, once closed, its manifest and the audit entry holding the manifest's hash), their
segments (order, SHA-256, times, the kiosk's timeline marks and gaps), and legal holds on
claims, which retention purges respect.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("recording_id", sa.String(32), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("claim_id", sa.String(32), nullable=False),
        sa.Column("booth_id", sa.String(64), nullable=False),
        sa.Column("branch", sa.String(32), nullable=False),
        sa.Column("officer_id", sa.String(64), nullable=False),
        sa.Column("officer_name", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("consent", sa.String(16), nullable=False),
        sa.Column("consent_json", sa.Text, nullable=False),
        sa.Column("media_json", sa.Text, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("clock_offset_s", sa.Float, nullable=False),
        sa.Column("clock_rtt_s", sa.Float, nullable=True),
        sa.Column("segments", sa.Integer, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("recorded_s", sa.Float, nullable=False),
        sa.Column("pending_bytes", sa.BigInteger, nullable=False),
        sa.Column("last_upload_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("manifest", sa.Text, nullable=True),
        sa.Column("manifest_sha256", sa.String(64), nullable=True),
        sa.Column("audit_seq", sa.Integer, nullable=True),
        sa.Column("purged_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("recording_id", name="pk_recordings"),
        sa.UniqueConstraint("session_id", name="uq_recordings_session_id"),
    )
    op.create_index("ix_recordings_claim_id", "recordings", ["claim_id"])
    op.create_index("ix_recordings_branch", "recordings", ["branch"])
    op.create_index("ix_recordings_officer_id", "recordings", ["officer_id"])
    op.create_index("ix_recordings_opened_at", "recordings", ["opened_at"])
    op.create_index("ix_recordings_state_opened", "recordings", ["state", "opened_at"])
    op.create_table(
        "recording_segments",
        sa.Column("recording_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("start_s", sa.Float, nullable=False),
        sa.Column("end_s", sa.Float, nullable=False),
        sa.Column("frames", sa.Integer, nullable=False),
        sa.Column("marks", sa.Text, nullable=False),
        sa.Column("gap_before", sa.Text, nullable=True),
        sa.Column("stored_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("recording_id", "seq", name="pk_recording_segments"),
    )
    op.create_table(
        "legal_holds",
        sa.Column("claim_id", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("placed_by", sa.String(64), nullable=False),
        sa.Column("placed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("claim_id", name="pk_legal_holds"),
    )


def downgrade() -> None:
    op.drop_table("legal_holds")
    op.drop_table("recording_segments")
    op.drop_index("ix_recordings_state_opened", table_name="recordings")
    op.drop_index("ix_recordings_opened_at", table_name="recordings")
    op.drop_index("ix_recordings_officer_id", table_name="recordings")
    op.drop_index("ix_recordings_branch", table_name="recordings")
    op.drop_index("ix_recordings_claim_id", table_name="recordings")
    op.drop_table("recordings")
