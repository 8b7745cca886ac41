"""The market's own stamp on every logged transaction.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Every rule of the state machine (billing, windows, deadlines) now uses the time at which the
market accepted a transaction, not the ``ts`` its signer chose (docs/market.md, "Time"). The
stamp is kept beside the envelope and named in the block that seals it. A log written before
this revision had no stamps; its transactions were ruled by their ``ts``, so that is their stamp.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("txs") as batch:
        batch.add_column(sa.Column("stamp", sa.BigInteger(), nullable=True))
    op.execute("UPDATE txs SET stamp = ts")
    with op.batch_alter_table("txs") as batch:
        batch.alter_column("stamp", existing_type=sa.BigInteger(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("txs") as batch:
        batch.drop_column("stamp")
