"""Table definitions (SQLAlchemy Core). Alembic migrations in `migrations/` create them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and read back timezone-aware on every database.

    SQLite keeps no zone: without this, 09:00+07:00 would be stored as 09:00 and read
    back naive, and comparisons with a bound `since` would compare wall-clock strings.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store timezone-aware times only")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # SQLite: stored as UTC above
        return value


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users = Table(
    "users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("display_name", String(128), nullable=False),
    Column("branch", String(32), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("pools", Text, nullable=False, default=""),  # comma-separated branch codes or "*"
    Column("skills", Text, nullable=False, default=""),  # comma-separated, e.g. "lang:en"
    Column("capacity", Integer, nullable=False, default=6),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

booths = Table(
    "booths",
    metadata,
    Column("booth_id", String(64), primary_key=True),
    Column("branch", String(32), nullable=False, index=True),
    Column("label", String(128), nullable=False),
    Column("secret_hash", Text, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=True),
)

# --- claims and evidence (migration 0002) ---------------------------------------------
# JSON-valued columns are canonical JSON text: portable across SQLite and PostgreSQL, and
# the audit log hashes exactly the bytes it stores.

claims = Table(
    "claims",
    metadata,
    Column("claim_id", String(32), primary_key=True),
    Column("booking_code", String(32), nullable=True, unique=True),
    Column("kpj", String(16), nullable=False),
    Column("nik", String(16), nullable=False, index=True),
    Column("branch", String(32), nullable=False, index=True),
    Column("claim_type", String(16), nullable=False),
    Column("appointment", UtcDateTime(), nullable=True),
    Column("balance_idr", BigInteger, nullable=False),
    Column("state", String(24), nullable=False),
    Column("walk_in", Boolean, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

documents = Table(
    "documents",
    metadata,
    Column("document_id", String(32), primary_key=True),
    Column("claim_id", String(32), ForeignKey("claims.claim_id"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("sha256", String(64), nullable=False, index=True),
    Column("content_type", String(32), nullable=False),
    Column("size_bytes", Integer, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("session_id", String(64), nullable=True),
    Column("uploaded_by", String(64), nullable=False),
    Column("uploaded_at", UtcDateTime(), nullable=False),
    Column("verdict", String(16), nullable=True),  # latest verdict; history in the audit
    Column("verdict_reasons", Text, nullable=False, default="[]"),
    Column("verdict_by", String(64), nullable=True),
    Column("verdict_at", UtcDateTime(), nullable=True),
    Column("purged_at", UtcDateTime(), nullable=True),
    Column("after_session", Boolean, nullable=False, default=False),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("outcome_id", String(32), primary_key=True),
    Column("claim_id", String(32), ForeignKey("claims.claim_id"), nullable=False, index=True),
    Column("decision", String(24), nullable=False),
    Column("reason_codes", Text, nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("decided_by", String(64), nullable=False, index=True),
    Column("branch", String(32), nullable=False, index=True),
    Column("session_id", String(64), nullable=True),
    Column("fingerprints", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Column("decided_at", UtcDateTime(), nullable=False, index=True),
    Column("audit_seq", BigInteger, nullable=False),
    # What was compared (migration 0006): canonical JSON, and its SHA-256, which the
    # outcome's audit entry holds (so `audit verify` proves it unchanged).
    Column("verification", Text, nullable=True),
    Column("verification_sha256", String(64), nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", String(40), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(48), nullable=False),
    Column("claim_id", String(32), nullable=True, index=True),
    Column("decision", String(24), nullable=True),
    Column("reason_codes", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Column("fingerprints", Text, nullable=False),
    Column("details", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# One row (id=1): the newest entry's seq and hash. Appending locks it, which serialises
# writers on PostgreSQL, and lets `audit verify` notice a truncated tail.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

idempotency = Table(
    "idempotency_keys",
    metadata,
    Column("principal", String(96), primary_key=True),  # "<role>:<id>" (migration 0005)
    Column("key", String(128), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

# --- refresh-token families (migration 0003) ------------------------------------------
# One family per login; every refresh uses up its token and adds a successor. Only the
# SHA-256 of each token's id is kept, so the table grants nothing if it leaks.

refresh_families = Table(
    "refresh_families",
    metadata,
    Column("family_id", String(64), primary_key=True),
    Column("account", String(80), nullable=False, index=True),  # user:<name> / booth:<id>
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),  # newest token's
    Column("revoked_at", UtcDateTime(), nullable=True),
    Column("revoked_reason", String(32), nullable=True),  # logout, reuse, disabled, ...
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "family_id",
        String(64),
        ForeignKey("refresh_families.family_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
    Column("used_at", UtcDateTime(), nullable=True),
)

# --- the verification workbench (migration 0006) --------------------------------------
# Dates of the member record are ISO text (YYYY-MM-DD): no time zone to get wrong.

_MEMBER_COLUMNS = (
    ("full_name", 128), ("birth_place", 64), ("birth_date", 10), ("sex", 1),
    ("address", 256), ("employer_name", 128), ("employment_end", 10), ("bank_name", 64),
    ("account_number", 20), ("account_holder", 128),
)  # fmt: skip


def _member_columns(*, required: bool) -> list[Column[str]]:
    optional = {"address"} if required else {name for name, _ in _MEMBER_COLUMNS}
    return [Column(name, String(size), nullable=name in optional) for name, size in _MEMBER_COLUMNS]


# The membership table `loket claims import` fills and the local MemberDirectory reads.
members = Table(
    "members",
    metadata,
    Column("nik", String(16), primary_key=True),
    Column("kpj", String(16), primary_key=True),
    *_member_columns(required=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# The record a claim carries (one per claim; replaced when looked up again, audited).
claim_members = Table(
    "claim_members",
    metadata,
    Column("claim_id", String(32), ForeignKey("claims.claim_id"), primary_key=True),
    *_member_columns(required=False),
    Column("source", String(16), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Column("note", String(300), nullable=True),
)

# Machine advice on a document: its reading ("reading"), or for a face still the face
# comparison with the claim's KTP ("face"). `result` is canonical JSON.
document_analyses = Table(
    "document_analyses",
    metadata,
    Column("document_id", String(32), ForeignKey("documents.document_id"), primary_key=True),
    Column("analysis", String(16), primary_key=True),
    Column("claim_id", String(32), nullable=False, index=True),
    Column("status", String(16), nullable=False),  # pending, done, unavailable, purged
    Column("reason", String(300), nullable=True),
    Column("result", Text, nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime(), nullable=True),
)

# The officer's state for each identity field of each document (latest; history in the
# audit log).
field_checks = Table(
    "field_checks",
    metadata,
    Column("document_id", String(32), ForeignKey("documents.document_id"), primary_key=True),
    Column("field", String(24), primary_key=True),
    Column("claim_id", String(32), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("state", String(12), nullable=False),
    Column("reason_code", String(64), nullable=True),
    Column("suggested", String(12), nullable=True),
    Column("checked_by", String(64), nullable=False),
    Column("checked_at", UtcDateTime(), nullable=False),
)
