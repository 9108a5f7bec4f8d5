"""Claims, documents, outcomes, the hash-chained audit log, idempotency keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("claim_id", sa.String(32), nullable=False),
        sa.Column("booking_code", sa.String(32), nullable=True),
        sa.Column("kpj", sa.String(16), nullable=False),
        sa.Column("nik", sa.String(16), nullable=False),
        sa.Column("branch", sa.String(32), nullable=False),
        sa.Column("claim_type", sa.String(16), nullable=False),
        sa.Column("appointment", TS, nullable=True),
        sa.Column("balance_idr", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("walk_in", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("claim_id", name="pk_claims"),
        sa.UniqueConstraint("booking_code", name="uq_claims_booking_code"),
    )
    op.create_index("ix_claims_nik", "claims", ["nik"])
    op.create_index("ix_claims_branch", "claims", ["branch"])
    op.create_table(
        "documents",
        sa.Column("document_id", sa.String(32), nullable=False),
        sa.Column("claim_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("session_id", sa.String(64), nullable=True),
        sa.Column("uploaded_by", sa.String(64), nullable=False),
        sa.Column("uploaded_at", TS, nullable=False),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("verdict_reasons", sa.Text, nullable=False),
        sa.Column("verdict_by", sa.String(64), nullable=True),
        sa.Column("verdict_at", TS, nullable=True),
        sa.Column("purged_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("document_id", name="pk_documents"),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.claim_id"], name="fk_documents_claim_id_claims"
        ),
    )
    op.create_index("ix_documents_claim_id", "documents", ["claim_id"])
    op.create_index("ix_documents_sha256", "documents", ["sha256"])
    op.create_table(
        "outcomes",
        sa.Column("outcome_id", sa.String(32), nullable=False),
        sa.Column("claim_id", sa.String(32), nullable=False),
        sa.Column("decision", sa.String(24), nullable=False),
        sa.Column("reason_codes", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=False),
        sa.Column("branch", sa.String(32), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=True),
        sa.Column("fingerprints", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("decided_at", TS, nullable=False),
        sa.Column("audit_seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("outcome_id", name="pk_outcomes"),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.claim_id"], name="fk_outcomes_claim_id_claims"
        ),
    )
    for column in ("claim_id", "decided_by", "branch", "decided_at"):
        op.create_index(f"ix_outcomes_{column}", "outcomes", [column])
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(48), nullable=False),
        sa.Column("claim_id", sa.String(32), nullable=True),
        sa.Column("decision", sa.String(24), nullable=True),
        sa.Column("reason_codes", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("fingerprints", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_claim_id", "audit_log", ["claim_id"])
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    op.execute(
        sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)").bindparams(h="0" * 64)
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.String(64), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("principal", "key", name="pk_idempotency_keys"),
    )


def downgrade() -> None:
    for table in ("idempotency_keys", "audit_head", "audit_log", "outcomes", "documents"):
        op.drop_table(table)
    op.drop_table("claims")
