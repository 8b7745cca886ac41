"""Alembic revisions of the market store, oldest first (``0001_initial`` creates the schema)."""
