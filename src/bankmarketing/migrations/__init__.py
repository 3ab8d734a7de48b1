"""Alembic migrations of the platform database (run by `database.migrate`)."""
