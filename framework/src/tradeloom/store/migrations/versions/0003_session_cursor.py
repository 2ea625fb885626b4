"""Paper and live sessions: the last market time a session has fully processed, and the order
fields a restart needs (creation time, trailing, one-cancels-other and bracket links).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("cursor", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("extra", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("extra")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("cursor")
