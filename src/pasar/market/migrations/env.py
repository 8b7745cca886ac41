"""Alembic environment of the market store.

:class:`pasar.market.store.SqlStore` runs the migrations itself, on a connection it has already
opened inside its write-locked transaction (``config.attributes["connection"]``), so that the
schema change is atomic and several workers starting at once migrate one after the other. A
developer running the ``alembic`` command instead sets ``sqlalchemy.url``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations() -> None:
    """Migrate on the caller's connection, or on one to ``sqlalchemy.url``."""
    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url, or run migrations through SqlStore")
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


run_migrations()
