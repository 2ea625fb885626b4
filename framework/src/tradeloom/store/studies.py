"""Optimisation studies in the journal database.

A study is resumable and shareable: trials are *claimed* in a write transaction (SQLite's
``BEGIN IMMEDIATE``, or a PostgreSQL advisory lock per study), so that several processes —
on one machine or, with PostgreSQL, on several — never run the same trial number, and a
study interrupted at any point resumes from what was written: trials still ``running`` that
belong to a dead process of this host, or that were claimed more than ``lease`` seconds ago,
are claimed again with the same params.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import delete, insert, select, update

from tradeloom.errors import ConfigError
from tradeloom.store import audit
from tradeloom.store.db import Store, now_iso
from tradeloom.store.models import StudyRow, TrialRow

__all__ = ["StudyRecord", "StudyStore", "TrialRecord", "owner_id"]

RUNNING, COMPLETE, FAILED = "running", "complete", "failed"


def owner_id(token: str = "") -> str:
    """``host:pid:token`` of this process and one optimisation in it."""
    return f"{socket.gethostname()}:{os.getpid()}:{token}"


@dataclass
class TrialRecord:
    """A stored trial."""

    number: int
    state: str
    params: dict[str, Any]
    system_attrs: dict[str, Any] = field(default_factory=dict)
    values: list[float] | None = None
    metrics: dict[str, Any] | None = None
    violations: list[float] | None = None
    equity: np.ndarray | None = None
    error: str | None = None
    owner: str = ""
    claimed_at: str = ""
    seconds: float | None = None

    @property
    def feasible(self) -> bool:
        return self.state == COMPLETE and all(v <= 0 for v in (self.violations or []))


@dataclass
class StudyRecord:
    """A study's identity: resuming it needs the same config, space and data."""

    name: str
    config_hash: str
    space_digest: str
    data_fingerprint: str
    strategy_id: str
    engine: str
    initial_cash: float
    config: dict[str, Any]
    space: dict[str, Any]
    bucket_ends: list[int]
    created_at: str = ""


class StudyStore:
    """Studies and trials in a :class:`~tradeloom.store.Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- studies --------------------------------------------------------------------------------
    def open(self, study: StudyRecord, *, fresh: bool = False) -> StudyRecord:
        """Create ``study``, or resume the stored one of that name if it matches; ``fresh``
        deletes a stored one first. A mismatch is a :class:`ConfigError` saying what changed."""
        with self.store._begin() as conn:
            self._lock(conn, study.name)
            row = conn.execute(
                select(StudyRow.__table__).where(StudyRow.name == study.name)
            ).first()
            if row is not None and fresh:
                conn.execute(delete(TrialRow).where(TrialRow.study == study.name))
                conn.execute(delete(StudyRow).where(StudyRow.name == study.name))
                self.store._audit(conn, "study.deleted", None, {"study": study.name})
                row = None
            if row is not None:
                stored = row._mapping
                changed = [
                    what
                    for what, a, b in (
                        ("the deployment config", stored["config_hash"], study.config_hash),
                        ("the search space", stored["space_digest"], study.space_digest),
                        ("the data", stored["data_fingerprint"], study.data_fingerprint),
                        ("the strategy", stored["strategy_id"], study.strategy_id),
                        ("the engine", stored["engine"], study.engine),
                    )
                    if a != b
                ]
                if changed:
                    raise ConfigError(
                        f"study {study.name!r} exists with a different "
                        f"{' and '.join(c.removeprefix('the ') for c in changed)}; name a new "
                        "study (--study NAME) or replace it (--fresh)",
                        path="--study",
                    )
                study.created_at = stored["created_at"]
                return study
            study.created_at = now_iso()
            conn.execute(
                insert(StudyRow.__table__),
                [{
                    "name": study.name, "created_at": study.created_at,
                    "config_hash": study.config_hash, "space_digest": study.space_digest,
                    "data_fingerprint": study.data_fingerprint, "strategy_id": study.strategy_id,
                    "engine": study.engine, "initial_cash": study.initial_cash,
                    "config": audit._plain(study.config), "space": audit._plain(study.space),
                    "bucket_ends": [int(x) for x in study.bucket_ends],
                }],
            )  # fmt: skip
            self.store._audit(
                conn, "study.created", None,
                {"study": study.name, "config_hash": study.config_hash,
                 "space_digest": study.space_digest, "data": study.data_fingerprint},
            )  # fmt: skip
        return study

    def studies(self) -> list[dict[str, Any]]:
        """Every study with its trial counts by state, newest first."""
        with self.store._connect() as conn:
            rows = conn.execute(
                select(StudyRow.__table__).order_by(StudyRow.created_at.desc())  # type: ignore[attr-defined]
            ).all()
            counts: dict[str, dict[str, int]] = {}
            for name, state in conn.execute(select(TrialRow.study, TrialRow.state)):
                counts.setdefault(name, {}).setdefault(state, 0)
                counts[name][state] += 1
        return [
            {
                "name": r.name,
                "created_at": r.created_at,
                "strategy_id": r.strategy_id,
                "engine": r.engine,
                "sampler": (r.space.get("optimize") or {}).get("sampler"),
                "trials": counts.get(r.name, {}),
            }
            for r in rows
        ]

    # --- trials ---------------------------------------------------------------------------------
    def trials(self, name: str) -> list[TrialRecord]:
        """Every trial of study ``name``, by number."""
        with self.store._connect() as conn:
            rows = conn.execute(
                select(TrialRow.__table__).where(TrialRow.study == name).order_by(TrialRow.number)
            ).all()
        return [_record(r) for r in rows]

    def claim(
        self,
        name: str,
        propose: Callable[
            [list[TrialRecord], int], Sequence[tuple[dict[str, Any], dict[str, Any]]]
        ],
        *,
        token: str = "",
        lease: float = 6 * 3600.0,
    ) -> list[TrialRecord]:
        """Under the study's write lock: take back abandoned trials (see the module's doc),
        or else ask ``propose(history, next_number)`` for new ``(params, system_attrs)`` and
        store them as ``running``, numbered from ``next_number``. Returns the trials to run
        (empty when ``propose`` has nothing more)."""
        me = owner_id(token)
        with self.store._begin() as conn:
            self._lock(conn, name)
            rows = conn.execute(
                select(TrialRow.__table__).where(TrialRow.study == name).order_by(TrialRow.number)
            ).all()
            history = [_record(r) for r in rows]
            stale = [t for t in history if t.state == RUNNING and _abandoned(t, me, lease)]
            if stale:
                now = now_iso()
                conn.execute(
                    update(TrialRow)
                    .where(TrialRow.study == name)
                    .where(TrialRow.number.in_([t.number for t in stale]))  # type: ignore[attr-defined]
                    .values(owner=me, claimed_at=now)
                )
                for t in stale:
                    t.owner, t.claimed_at = me, now
                return stale
            start = history[-1].number + 1 if history else 0
            proposals = list(propose(history, start))
            if not proposals:
                return []
            now = now_iso()
            claimed = [
                TrialRecord(start + i, RUNNING, dict(params), dict(attrs), owner=me, claimed_at=now)
                for i, (params, attrs) in enumerate(proposals)
            ]
            conn.execute(
                insert(TrialRow.__table__),
                [{
                    "study": name, "number": t.number, "state": RUNNING,
                    "params": audit._plain(t.params), "system_attrs": audit._plain(t.system_attrs),
                    "owner": me, "claimed_at": now,
                } for t in claimed],
            )  # fmt: skip
        return claimed

    def finish(self, name: str, trials: Sequence[TrialRecord]) -> None:
        """Store the results of claimed trials (state, values, metrics, equity...)."""
        if not trials:
            return
        now = now_iso()
        with self.store._begin() as conn:
            for t in trials:
                conn.execute(
                    update(TrialRow)
                    .where(TrialRow.study == name)
                    .where(TrialRow.number == t.number)
                    .values(
                        state=t.state,
                        values=None if t.values is None else [_num(v) for v in t.values],
                        metrics=None
                        if t.metrics is None
                        else audit._plain({k: _num(v) for k, v in t.metrics.items()}),
                        violations=t.violations,
                        system_attrs=audit._plain(t.system_attrs),
                        equity=None if t.equity is None else _to_bytes(t.equity),
                        error=t.error,
                        finished_at=now,
                        seconds=t.seconds,
                    )
                )

    def record_summary(self, name: str, payload: dict[str, Any]) -> None:
        """Audit an optimisation's outcome (best trial, overfitting statistics)."""
        with self.store._begin() as conn:
            self.store._audit(conn, "study.result", None, {"study": name, **payload})

    def _lock(self, conn: Any, name: str) -> None:
        if self.store.dialect == "postgresql":
            key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({key})")


def _num(value: Any) -> Any:
    """JSON has no NaN: non-finite numbers are stored as None."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _to_bytes(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<f8").tobytes()


def _record(row: Any) -> TrialRecord:
    return TrialRecord(
        number=row.number,
        state=row.state,
        params=dict(row.params),
        system_attrs=dict(row.system_attrs or {}),
        values=None if row.values is None else [np.nan if v is None else v for v in row.values],
        metrics=None if row.metrics is None else dict(row.metrics),
        violations=None if row.violations is None else list(row.violations),
        equity=None if row.equity is None else np.frombuffer(row.equity, dtype="<f8").copy(),
        error=row.error,
        owner=row.owner,
        claimed_at=row.claimed_at,
        seconds=row.seconds,
    )


def _abandoned(trial: TrialRecord, me: str, lease: float) -> bool:
    """A running trial nobody is working on: its process (on this host) is gone, or it is
    this process and an earlier optimisation in it (which has ended), or its lease ran out."""
    if trial.owner == me:
        return False
    host, pid, _token = [*trial.owner.split(":"), "", "", ""][:3]
    if host == socket.gethostname() and pid.isdigit():
        if int(pid) == os.getpid():
            return True
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
    try:
        claimed = datetime.fromisoformat(trial.claimed_at)
    except ValueError:
        return True
    return datetime.now(UTC) - claimed > timedelta(seconds=lease)
