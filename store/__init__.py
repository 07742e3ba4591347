"""The SQL store (SQLAlchemy Core; SQLite by default, PostgreSQL in deployments)."""
