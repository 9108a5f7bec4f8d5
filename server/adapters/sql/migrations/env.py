"""Alembic environment. Loket runs migrations in-process (`loket db upgrade`, and at start
for the embedded SQLite default) on a connection it hands over in `config.attributes`."""

from __future__ import annotations

from alembic import context

from server.adapters.sql.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `loket db upgrade`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place; batch mode rebuilds tables instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
