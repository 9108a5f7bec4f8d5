"""The verification workbench: the membership table, the member record on each claim, the
machine's advice on documents (readings, face comparisons), the officer's state for each
identity field, and what was compared kept on the outcome.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
MEMBER = (
    ("full_name", 128), ("birth_place", 64), ("birth_date", 10), ("sex", 1),
    ("address", 256), ("employer_name", 128), ("employment_end", 10), ("bank_name", 64),
    ("account_number", 20), ("account_holder", 128),
)  # fmt: skip


def _member(*, required: bool) -> list[sa.Column[str]]:
    return [
        sa.Column(name, sa.String(size), nullable=not required or name == "address")
        for name, size in MEMBER
    ]


def upgrade() -> None:
    op.create_table(
        "members",
        sa.Column("nik", sa.String(16), nullable=False),
        sa.Column("kpj", sa.String(16), nullable=False),
        *_member(required=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("nik", "kpj", name="pk_members"),
    )
    op.create_table(
        "claim_members",
        sa.Column("claim_id", sa.String(32), nullable=False),
        *_member(required=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("note", sa.String(300), nullable=True),
        sa.PrimaryKeyConstraint("claim_id", name="pk_claim_members"),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.claim_id"], name="fk_claim_members_claim_id_claims"
        ),
    )
    op.create_table(
        "document_analyses",
        sa.Column("document_id", sa.String(32), nullable=False),
        sa.Column("analysis", sa.String(16), nullable=False),
        sa.Column("claim_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(300), nullable=True),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("document_id", "analysis", name="pk_document_analyses"),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.document_id"],
            name="fk_document_analyses_document_id_documents",
        ),
    )
    op.create_index("ix_document_analyses_claim_id", "document_analyses", ["claim_id"])
    op.create_table(
        "field_checks",
        sa.Column("document_id", sa.String(32), nullable=False),
        sa.Column("field", sa.String(24), nullable=False),
        sa.Column("claim_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("reason_code", sa.String(64), nullable=True),
        sa.Column("suggested", sa.String(12), nullable=True),
        sa.Column("checked_by", sa.String(64), nullable=False),
        sa.Column("checked_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("document_id", "field", name="pk_field_checks"),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.document_id"],
            name="fk_field_checks_document_id_documents",
        ),
    )
    op.create_index("ix_field_checks_claim_id", "field_checks", ["claim_id"])
    with op.batch_alter_table("outcomes") as batch:
        batch.add_column(sa.Column("verification", sa.Text, nullable=True))
        batch.add_column(sa.Column("verification_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outcomes") as batch:
        batch.drop_column("verification_sha256")
        batch.drop_column("verification")
    for table in ("field_checks", "document_analyses", "claim_members", "members"):
        op.drop_table(table)
