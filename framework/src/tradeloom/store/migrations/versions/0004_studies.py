"""Optimisation studies and their trials (``tradeloom optimize`` and ``walkforward``).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("space_digest", sa.String(64), nullable=False),
        sa.Column("data_fingerprint", sa.String(128), nullable=False),
        sa.Column("strategy_id", sa.String(120), nullable=False),
        sa.Column("engine", sa.String(16), nullable=False),
        sa.Column("initial_cash", sa.Float(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("space", sa.JSON(), nullable=False),
        sa.Column("bucket_ends", sa.JSON(), nullable=False),
    )
    op.create_table(
        "trials",
        sa.Column("study", sa.String(200), sa.ForeignKey("studies.name"), primary_key=True),
        sa.Column("number", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("system_attrs", sa.JSON(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("violations", sa.JSON(), nullable=True),
        sa.Column("equity", sa.LargeBinary(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("claimed_at", sa.String(40), nullable=False),
        sa.Column("finished_at", sa.String(40), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
    )
    op.create_index("ix_trials_state", "trials", ["state"])


def downgrade() -> None:
    op.drop_index("ix_trials_state", "trials")
    op.drop_table("trials")
    op.drop_table("studies")
