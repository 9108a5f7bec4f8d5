"""Table definitions (SQLAlchemy Core). Alembic migrations in `migrations/` create them."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table, Text

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
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

booths = Table(
    "booths",
    metadata,
    Column("booth_id", String(64), primary_key=True),
    Column("branch", String(32), nullable=False, index=True),
    Column("label", String(128), nullable=False),
    Column("secret_hash", Text, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=True),
)
