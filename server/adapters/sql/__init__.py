"""SQL adapters (SQLAlchemy 2 async): SQLite by default, PostgreSQL by configuration."""
