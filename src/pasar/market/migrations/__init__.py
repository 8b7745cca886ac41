"""Alembic migrations of the market store (run by :class:`pasar.market.store.SqlStore`)."""
