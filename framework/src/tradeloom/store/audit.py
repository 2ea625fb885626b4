"""The tamper-evident audit log: records chained by SHA-256.

Each record is canonical JSON (sorted keys, no whitespace, UTF-8, no NaN) of
``{"seq", "recorded_at", "kind", "run_id", "payload"}``, and its hash is
``SHA-256(prev_hash + "\\n" + record)`` with ``prev_hash`` the previous record's hash
(:data:`GENESIS` for the first). Editing, deleting or reordering any record breaks the chain at
that record: its own hash no longer matches, or the next record's ``prev_hash`` does not.

What a chain alone cannot show: removing records from the *end* (the shorter chain is still
valid), or rewriting the whole chain from some record on with freshly computed hashes. Both are
caught by an **anchor**: the head hash (:func:`head`) written somewhere the database's users
cannot change (a ticket, an email, another system); :func:`verify` given the anchor checks that
the anchored record is still in the chain with the same hash.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64
"""The ``prev_hash`` of the first record."""


def canonical(value: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 kept; NaN and infinities become
    ``null``, numpy scalars plain numbers."""
    try:  # the common case: plain JSON values already
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError):
        return json.dumps(
            _plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
            allow_nan=False,
        )  # fmt: skip


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _plain(value.item())
    return value


def record_text(seq: int, recorded_at: str, kind: str, run_id: str | None, payload: Any) -> str:
    return canonical(
        {"seq": seq, "recorded_at": recorded_at, "kind": kind, "run_id": run_id,
         "payload": payload}
    )  # fmt: skip


def chain_hash(prev_hash: str, record: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{record}".encode()).hexdigest()


@dataclass(frozen=True)
class Anchor:
    """A head written down elsewhere: ``seq`` and ``hash`` (``tradeloom audit head``)."""

    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """``"SEQ:HASH"`` as :func:`head` prints it."""
        seq, sep, digest = text.strip().partition(":")
        if (
            not sep
            or not seq.isdigit()
            or len(digest) != 64
            or any(c not in "0123456789abcdefABCDEF" for c in digest)
        ):
            raise ValueError(
                f"anchor {text!r} is not SEQ:HASH (as `tradeloom audit head` prints it, e.g. "
                "42:3f1c...)"
            )
        return cls(int(seq), digest.lower())

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


@dataclass
class VerifyReport:
    """The outcome of :func:`verify`: ``ok`` when nothing is wrong; ``problems`` names each
    broken record (its sequence number and what does not match)."""

    records: int
    head: Anchor | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    rows: Iterable[tuple[int, str, str, str | None, str, str, str]],
    anchor: Anchor | None = None,
) -> VerifyReport:
    """Check a chain given as ``(seq, recorded_at, kind, run_id, record, prev_hash, hash)``
    rows in ``seq`` order.

    Every record must: carry the next sequence number (1, 2, ...); have a ``record`` text that
    is the canonical form of its own columns; have ``prev_hash`` equal to the previous record's
    hash; and have ``hash = SHA-256(prev_hash + "\\n" + record)``. With ``anchor``, the record
    at the anchor's sequence number must exist and have the anchor's hash."""
    problems: list[str] = []
    prev = GENESIS
    expected = 1
    count = 0
    last: Anchor | None = None
    anchored = False
    for seq, recorded_at, kind, run_id, record, prev_hash, digest in rows:
        count += 1
        if seq != expected:
            problems.append(
                f"record {seq}: expected sequence number {expected} (a record is missing or "
                "out of order)"
            )
        try:
            data = json.loads(record)
            own = record_text(seq, recorded_at, kind, run_id, data.get("payload"))
        except (ValueError, AttributeError):
            own = None
        if own != record:
            problems.append(f"record {seq}: its columns do not match the hashed record text")
        if prev_hash != prev:
            problems.append(
                f"record {seq}: prev_hash does not match the hash of the record before it"
            )
        if chain_hash(prev_hash, record) != digest:
            problems.append(f"record {seq}: hash does not match its content (edited)")
        if anchor is not None and seq == anchor.seq:
            anchored = True
            if digest != anchor.hash:
                problems.append(
                    f"record {seq}: hash differs from the anchor {anchor} (the chain was rewritten)"
                )
        prev = digest
        expected = seq + 1
        last = Anchor(seq, digest)
    if anchor is not None and not anchored:
        problems.append(
            f"anchored record {anchor.seq} is missing: the log has {count} record(s) (truncated)"
        )
    return VerifyReport(count, last, problems)
