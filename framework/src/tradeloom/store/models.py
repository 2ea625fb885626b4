"""The journal's tables (sqlmodel). The schema is owned by the migrations in
``tradeloom/store/migrations``; these classes must match the latest revision (a test compares
them).

Times of market events (``ts``) are integers, nanoseconds since the epoch, UTC — the engine's
clock, exact. Wall-clock times (when a run started, when an audit record was written) are ISO
8601 strings in UTC, so they hash and compare the same on every database.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

metadata = SQLModel.metadata


class DeploymentRow(SQLModel, table=True):
    """A resolved deployment config (secrets masked), stored once per config hash."""

    __tablename__ = "deployments"

    config_hash: str = Field(primary_key=True, max_length=64)
    config: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: str = Field(max_length=40)


class RunRow(SQLModel, table=True):
    """One backtest, paper or live session, with its provenance and final metrics."""

    __tablename__ = "runs"

    id: str = Field(primary_key=True, max_length=40)
    mode: str = Field(max_length=16)
    status: str = Field(max_length=16, index=True)
    """``running``, ``finished`` or ``failed``."""
    title: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    started_at: str = Field(max_length=40, index=True)
    finished_at: str | None = Field(default=None, max_length=40)
    config_hash: str = Field(max_length=64, index=True, foreign_key="deployments.config_hash")
    data_fingerprint: str = Field(default="", max_length=128)
    framework_version: str = Field(default="", max_length=64)
    plugins: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """``"distribution version"`` of every plugin distribution the deployment uses."""
    code_hash: str = Field(default="", max_length=64)
    """SHA-256 over the strategies' source files (see ``code``)."""
    code: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """Per strategy class: its source files' hash, the files hashed, the git commit."""
    git_commit: str | None = Field(default=None, max_length=64)
    """The strategy package's git commit when it is a git checkout (the first strategy's)."""
    metrics: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    error: str | None = Field(default=None, sa_column=Column(Text))
    out_dir: str | None = Field(default=None, sa_column=Column(Text))
    cursor: int | None = Field(default=None, sa_column=Column(BigInteger))
    """Paper and live sessions: the market time (ns) of the last bars fully processed and
    journaled; a restart resumes after it."""


class OrderRow(SQLModel, table=True):
    """Every state of every order: ``version`` 0 is the order as first journaled (PENDING,
    before it was sent), each later version one update."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("run_id", "client_order_id", "version", name="uq_orders_version"),
        Index("ix_orders_run_coid", "run_id", "client_order_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=40, foreign_key="runs.id")
    client_order_id: str = Field(max_length=80)
    version: int
    ts: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(max_length=20)
    strategy_id: str = Field(default="", max_length=80)
    symbol: str = Field(max_length=40)
    side: str = Field(max_length=8)
    type: str = Field(max_length=20)
    quantity: float
    limit_price: float | None = None
    stop_price: float | None = None
    tif: str = Field(default="", max_length=8)
    filled_quantity: float = 0.0
    avg_fill_price: float = 0.0
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    extra: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    """The order's other fields when not at their defaults: ``created_ts``, ``triggered``,
    ``trail_amount``, ``trail_percent``, ``oco_group``, ``parent_id``."""


class FillRow(SQLModel, table=True):
    """One execution; a fill id is stored once per run (re-delivered fills are dropped)."""

    __tablename__ = "fills"
    __table_args__ = (UniqueConstraint("run_id", "fill_id", name="uq_fills_trade"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=40, foreign_key="runs.id", index=True)
    fill_id: str = Field(max_length=80)
    client_order_id: str = Field(max_length=80)
    ts: int = Field(sa_column=Column(BigInteger, nullable=False))
    strategy_id: str = Field(default="", max_length=80)
    symbol: str = Field(max_length=40)
    side: str = Field(max_length=8)
    quantity: float
    price: float
    fee: float = 0.0


class PositionRow(SQLModel, table=True):
    """A snapshot of one position (backtests: at the end of the run)."""

    __tablename__ = "positions"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=40, foreign_key="runs.id", index=True)
    ts: int = Field(sa_column=Column(BigInteger, nullable=False))
    symbol: str = Field(max_length=40)
    quantity: float
    avg_price: float


class EquityRow(SQLModel, table=True):
    """Equity snapshots (a backtest stores at most ``EQUITY_SNAPSHOTS`` evenly spaced ones,
    the last bar always included)."""

    __tablename__ = "equity"

    run_id: str = Field(primary_key=True, max_length=40, foreign_key="runs.id")
    ts: int = Field(sa_column=Column(BigInteger, primary_key=True))
    cash: float
    position_value: float
    equity: float


class RiskEventRow(SQLModel, table=True):
    """What the risk control did: rejects, state changes, kills, exits, alerts."""

    __tablename__ = "risk_events"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=40, foreign_key="runs.id", index=True)
    ts: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(max_length=16)
    scope: str = Field(max_length=120)
    state: str = Field(default="", max_length=16)
    rule: str = Field(default="", max_length=80)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    limit: float | None = None
    observed: float | None = None
    client_order_id: str = Field(default="", max_length=80)
    by: str = Field(default="rule", max_length=16)


class AuditRow(SQLModel, table=True):
    """One record of the append-only audit log. ``record`` is the canonical JSON text that was
    hashed (kept as text: a JSON column could be re-serialised by the database);
    ``hash = SHA-256(prev_hash + "\\n" + record)``."""

    __tablename__ = "audit_log"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    recorded_at: str = Field(max_length=40)
    kind: str = Field(max_length=40, index=True)
    run_id: str | None = Field(default=None, max_length=40, index=True)
    record: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


class StudyRow(SQLModel, table=True):
    """An optimisation study: what is searched, on which deployment and data. A study resumes
    only with the same config hash, space digest and data fingerprint."""

    __tablename__ = "studies"

    name: str = Field(primary_key=True, max_length=200)
    created_at: str = Field(max_length=40)
    config_hash: str = Field(max_length=64)
    space_digest: str = Field(max_length=64)
    data_fingerprint: str = Field(max_length=128)
    strategy_id: str = Field(max_length=120)
    engine: str = Field(max_length=16)
    """``vector`` or ``event``: which engine evaluates the trials."""
    initial_cash: float
    config: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    """The deployment (secrets masked)."""
    space: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    bucket_ends: list[int] = Field(sa_column=Column(JSON, nullable=False))
    """The last timestamp (ns, UTC) of each period of the trials' kept equity."""


class TrialRow(SQLModel, table=True):
    """One trial of a study: proposed (``running``), then ``complete`` or ``failed``."""

    __tablename__ = "trials"

    study: str = Field(primary_key=True, max_length=200, foreign_key="studies.name")
    number: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    state: str = Field(max_length=16, index=True)
    params: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    system_attrs: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    """What the sampler attached when it proposed the trial (CMA-ES and NSGA-II state)."""
    values: list[float] | None = Field(default=None, sa_column=Column(JSON))
    """The objectives' values, in the study's objective order."""
    metrics: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    violations: list[float] | None = Field(default=None, sa_column=Column(JSON))
    """Per constraint: <= 0 when met."""
    equity: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    """Equity at the end of each period (float64, little-endian)."""
    error: str | None = Field(default=None, sa_column=Column(Text))
    owner: str = Field(max_length=200)
    """``host:pid:token`` of the process (and the optimisation in it) that claimed it."""
    claimed_at: str = Field(max_length=40)
    finished_at: str | None = Field(default=None, max_length=40)
    seconds: float | None = None
