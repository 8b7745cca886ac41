"""The market database's tables, and bringing a database to their newest revision.

The tables are declared here as SQLAlchemy sees them for queries (:mod:`pasar.market.store`);
the DDL itself lives in the Alembic revisions (``migrations/versions``), and a test compares the
two so they cannot drift apart. A database already at :data:`HEAD_REVISION` is left as it is
without loading Alembic (:func:`upgrade_to_head`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    text,
)

from pasar.market.tx_records import StoreError

_ID = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid

metadata = MetaData()

txs_table = Table(
    "txs",
    metadata,
    Column("seq", _ID, primary_key=True, autoincrement=False),
    Column("digest", String(64), nullable=False),
    Column("type", Text, nullable=False),
    Column("signer", Text, nullable=False),
    Column("nonce", Text, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("envelope", Text, nullable=False),
    Column("stamp", BigInteger, nullable=False),  # the market's clock when it accepted the tx
    UniqueConstraint("digest", name="uq_txs_digest"),
    UniqueConstraint("signer", "nonce", name="uq_txs_signer_nonce"),
)

blocks_table = Table(
    "blocks",
    metadata,
    Column("height", _ID, primary_key=True, autoincrement=False),
    Column("prev_hash", String(64), nullable=False),
    Column("tx_root", String(64), nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Column("sig", String(128), nullable=False),
)

meta_table = Table(
    "meta",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
)


HEAD_REVISION = "0002"
"""The newest revision in ``migrations/versions`` (a test checks that it is Alembic's head):
a database stamped with it needs no migration, so a market opens it without loading Alembic."""


def schema_revisions(conn: Connection) -> list[str]:
    """The revisions Alembic's version table holds ([] when there is none yet), read directly
    (a missing table is looked up, not queried: a failed query aborts a PostgreSQL
    transaction)."""
    if not inspect(conn).has_table("alembic_version"):
        return []
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    return sorted(str(row[0]) for row in rows)


def migrations_dir() -> Path:
    """The Alembic script folder shipped inside the package (works from a wheel or a checkout)."""
    folder = resources.files("pasar.market").joinpath("migrations")
    if not isinstance(folder, Path) or not (folder / "env.py").is_file():
        raise StoreError(
            "the market's database migrations are missing from this pasar installation",
            code="migrations_missing",
            status=500,
            hint="reinstall pasar from a wheel or a source checkout (not a zip import)",
        )
    return folder


def upgrade_to_head(conn: Connection) -> None:
    """Bring the schema on ``conn`` (a write transaction) to the newest revision.

    A database already at :data:`HEAD_REVISION` (every start but the first) is left as it is
    without loading Alembic, which is what ``upgrade head`` would do too: Alembic and what it
    imports (Mako, Pygments, SQLAlchemy's PostgreSQL dialect) cost a starting market ~0.2 s of
    CPU, on the critical path of ``pasar devnet up``."""
    if schema_revisions(conn) == [HEAD_REVISION]:
        return
    from alembic import command
    from alembic.config import Config
    from alembic.util.exc import CommandError

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["connection"] = conn
    try:
        command.upgrade(config, "head")
    except CommandError as exc:
        raise StoreError(
            f"cannot migrate the market database: {exc}",
            code="schema_unknown",
            status=500,
            hint="the database was probably written by a newer pasar; upgrade pasar",
        ) from None
