"""The initial schema: the transaction log, the blocks over it, and market metadata.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out by hand (docs/market.md, "Store"). ``seq`` and ``height`` are assigned by the store
(``max + 1`` under its write lock), not by the database, so they have no default; on SQLite
they are ``INTEGER PRIMARY KEY`` (the rowid), elsewhere ``BIGINT``. Envelopes and block headers
are canonical JSON kept as TEXT, so they read back byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "txs",
        sa.Column("seq", _id(), primary_key=True, autoincrement=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("signer", sa.Text(), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.UniqueConstraint("digest", name="uq_txs_digest"),
        sa.UniqueConstraint("signer", "nonce", name="uq_txs_signer_nonce"),
    )
    op.create_table(
        "blocks",
        sa.Column("height", _id(), primary_key=True, autoincrement=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("tx_root", sa.String(64), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sig", sa.String(128), nullable=False),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("meta")
    op.drop_table("blocks")
    op.drop_table("txs")
