"""The tamper-evident audit log: the hash chain recomputed independently, every kind of tamper
detected (1,000 seeded random trials), and what only an anchor catches (truncation, a chain
rewritten with fresh hashes)."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_store import execute, store_url_for

from tradeloom.store import Anchor, Store, audit

GENESIS = "0" * 64
Row = tuple[int, str, str, "str | None", str, str, str]
"""``(seq, recorded_at, kind, run_id, record, prev_hash, hash)``, as audit.verify takes them."""
COLUMNS = ("seq", "recorded_at", "kind", "run_id", "record", "prev_hash", "hash")


# --- the chain, written here from the documented formula --------------------------------------


def record_text(seq: int, recorded_at: str, kind: str, run_id: str | None, payload: Any) -> str:
    body = {"seq": seq, "recorded_at": recorded_at, "kind": kind, "run_id": run_id,
            "payload": payload}  # fmt: skip
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def link(prev_hash: str, record: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{record}".encode()).hexdigest()


def make_chain(
    entries: list[tuple[str, str, str | None, Any]], start_prev: str = GENESIS
) -> list[Row]:
    """Rows for ``(recorded_at, kind, run_id, payload)`` entries, seq 1, 2, ..."""
    rows: list[Row] = []
    prev = start_prev
    for seq, (recorded_at, kind, run_id, payload) in enumerate(entries, start=1):
        text = record_text(seq, recorded_at, kind, run_id, payload)
        digest = link(prev, text)
        rows.append((seq, recorded_at, kind, run_id, text, prev, digest))
        prev = digest
    return rows


ENTRIES: list[tuple[str, str, str | None, Any]] = [
    ("2024-01-02T03:04:05.000001+00:00", "run.started", "r1", {"mode": "live", "b": [1, 2.5]}),
    ("2024-01-02T03:04:05.000002+00:00", "order.submitted", "r1", {"symbol": "ÆØÅ", "q": 1e-7}),
    ("2024-01-02T03:04:05.000003+00:00", "operator.kill", None, {"by": "ops", "why": None}),
    ("2024-01-02T03:04:05.000004+00:00", "run.finished", "r1", "done"),
]


def test_the_chain_is_sha256_of_prev_hash_newline_record_from_genesis() -> None:
    rows = make_chain(ENTRIES)
    # The first record, spelled out: canonical JSON (sorted keys, no spaces, UTF-8 as is).
    first = (
        '{"kind":"run.started","payload":{"b":[1,2.5],"mode":"live"},'
        '"recorded_at":"2024-01-02T03:04:05.000001+00:00","run_id":"r1","seq":1}'
    )
    assert rows[0][4] == first
    assert rows[0][5] == GENESIS == audit.GENESIS
    assert rows[0][6] == hashlib.sha256(("0" * 64 + "\n" + first).encode("utf-8")).hexdigest()
    assert '"symbol":"ÆØÅ"' in rows[1][4]  # not \u-escaped
    for a, b in itertools.pairwise(rows):
        assert b[5] == a[6]
    # The module's helpers compute the same texts and hashes.
    for seq, recorded_at, kind, run_id, text, prev, digest in rows:
        assert (
            audit.record_text(seq, recorded_at, kind, run_id, json.loads(text)["payload"]) == text
        )
        assert audit.chain_hash(prev, text) == digest
    report = audit.verify(rows)
    assert (report.ok, report.records, report.problems) == (True, 4, [])
    assert report.head == Anchor(4, rows[-1][6])
    assert audit.verify(rows, Anchor(2, rows[1][6])).ok
    assert audit.verify(rows, report.head).ok


def test_an_empty_log() -> None:
    report = audit.verify([])
    assert (report.ok, report.records, report.head) == (True, 0, None)
    anchored = audit.verify([], Anchor(1, "a" * 64))
    assert not anchored.ok
    assert anchored.problems == [
        "anchored record 1 is missing: the log has 0 record(s) (truncated)"
    ]


def _replace(rows: list[Row], i: int, **changes: Any) -> list[Row]:
    out = [list(r) for r in rows]
    for name, value in changes.items():
        out[i][COLUMNS.index(name)] = value
    return [tuple(r) for r in out]  # type: ignore[misc]


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        ("first prev_hash not genesis", "record 1: prev_hash does not match"),
        ("starts at 2", "record 2: expected sequence number 1"),
        (
            "whitespace in record, rehashed",
            "record 2: its columns do not match the hashed record text",
        ),
        ("record not JSON, rehashed", "record 2: its columns do not match the hashed record text"),
        (
            "record a JSON list, rehashed",
            "record 2: its columns do not match the hashed record text",
        ),
        ("hash column edited", "record 3: hash does not match its content (edited)"),
        ("kind column edited", "record 3: its columns do not match the hashed record text"),
        ("record 2 deleted", "record 3: expected sequence number 2"),
    ],
)
def test_each_fault_is_named(tamper: str, problem: str) -> None:
    rows = make_chain(ENTRIES)

    def rehashed(i: int, text: str) -> list[Row]:  # a record replaced and its hash recomputed
        return _replace(rows, i, record=text, hash=link(rows[i][5], text))

    broken = {
        "first prev_hash not genesis": lambda: make_chain(ENTRIES, start_prev="1" * 64),
        "starts at 2": lambda: [(2, *r[1:]) for r in rows[:1]] + rows[1:],
        "whitespace in record, rehashed": lambda: rehashed(1, rows[1][4].replace(",", ", ", 1)),
        "record not JSON, rehashed": lambda: rehashed(1, rows[1][4][:-1]),
        "record a JSON list, rehashed": lambda: rehashed(1, "[1,2]"),
        "hash column edited": lambda: _replace(rows, 2, hash="f" * 64),
        "kind column edited": lambda: _replace(rows, 2, kind="operator.resume"),
        "record 2 deleted": lambda: [rows[0], *rows[2:]],
    }[tamper]()
    report = audit.verify(broken)
    assert not report.ok
    assert any(p.startswith(problem) for p in report.problems), report.problems


def test_an_anchor_that_differs_means_a_rewrite() -> None:
    rows = make_chain(ENTRIES)
    report = audit.verify(rows, Anchor(3, "b" * 64))
    assert report.problems == [
        f"record 3: hash differs from the anchor 3:{'b' * 64} (the chain was rewritten)"
    ]


# --- a real store --------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with store_url_for(request.param, tmp_path) as url:
        db = Store(url)
        try:
            yield db
        finally:
            db.close()


def fill_log(store: Store, n: int = 50, seed: int = 3) -> list[Row]:
    """``n`` audit records of every kind the store writes, with varied payloads."""
    rng = random.Random(seed)
    runs = 0

    def written() -> int:
        head = store.audit_head()
        return 0 if head is None else head.seq

    while written() + 9 <= n:  # a run writes at most 9 records (its config is new)
        runs += 1
        run_id = f"run-{runs}"
        store.begin_run(run_id, "paper", {"n": runs}, {"framework_version": "t"}, f"run {runs}")
        for _ in range(rng.randint(1, 6)):
            payload = {"x": rng.random(), "n": rng.randint(-5, 5), "txt": rng.choice(["é", "✓", "a b"]),
                       "nested": {"list": [rng.random(), None, True]}}  # fmt: skip
            store.audit(rng.choice(["operator.note", "operator.resume", "risk.kill"]), payload,
                        rng.choice([run_id, None]))  # fmt: skip
        store.finish_run(run_id, rng.choice(["finished", "failed"]), error=rng.choice(["", "x"]))
    while written() < n:
        store.audit("operator.note", {"pad": written()})
    rows = list(store._audit_rows())
    assert [r[0] for r in rows] == list(range(1, n + 1))
    return rows


def test_the_store_writes_the_documented_chain(store: Store) -> None:
    import numpy as np

    store.begin_run("r1", "live", {"a": 1}, {"framework_version": "t"})
    store.audit("operator.note", {"nan": math.nan, "inf": -math.inf, "np": np.float64(1.5),
                                  "i": np.int64(7), "text": "é ✓ 中"})  # fmt: skip
    store.finish_run("r1", "finished")
    rows = list(store._audit_rows())
    prev = GENESIS
    for expected_seq, (seq, recorded_at, kind, run_id, text, prev_hash, digest) in enumerate(
        rows, 1
    ):
        assert seq == expected_seq
        payload = json.loads(text)["payload"]
        assert text == record_text(seq, recorded_at, kind, run_id, payload)
        assert prev_hash == prev
        assert digest == link(prev, text)
        assert recorded_at.endswith("+00:00") and len(recorded_at) == 32
        prev = digest
    assert [r[2] for r in rows] == ["config", "run.started", "operator.note", "run.finished"]
    assert json.loads(rows[0][4])["payload"]["config"] == {"a": 1}
    assert json.loads(rows[2][4])["payload"] == {
        "nan": None,
        "inf": None,
        "np": 1.5,
        "i": 7,
        "text": "é ✓ 中",
    }
    assert [r[1] for r in rows] == sorted(r[1] for r in rows)
    assert store.audit_head() == Anchor(4, prev)
    assert store.audit_verify(Anchor.parse(str(store.audit_head()))).ok


# --- random tampering ------------------------------------------------------------------------------


def _edit_text(rng: random.Random, text: str) -> str:
    """``text`` with one character changed (may leave JSON valid or not)."""
    while True:
        i = rng.randrange(len(text))
        new = rng.choice('abcdefxyz0123456789"{}:,. \\é')
        if new != text[i]:
            return text[:i] + new + text[i + 1 :]


def _edit_payload(rng: random.Random, text: str) -> str:
    """The record with its payload changed but still canonical JSON: only the hash tells."""
    data = json.loads(text)
    payload = data["payload"]
    choice = rng.randrange(3)
    if choice == 0 and isinstance(payload, dict) and payload:
        key = rng.choice(sorted(payload))
        payload[key] = [payload[key], "x"]
    elif choice == 1 and isinstance(payload, dict):
        payload[f"added{rng.randrange(1000)}"] = rng.random()
    else:
        data["payload"] = {"replaced": rng.random()}
    return record_text(
        data["seq"], data["recorded_at"], data["kind"], data["run_id"], data["payload"]
    )


def _different(rng: random.Random, column: str, value: Any) -> Any:
    if column == "run_id":
        return (
            rng.choice(["run-x", "run-1 ", "RUN-1"])
            if value is None
            else rng.choice([None, value + "x", ""])
        )
    if column == "recorded_at":
        return _edit_text(rng, value)
    if column == "kind":
        return rng.choice(
            [
                value + "x",
                value.upper(),
                "operator.note" if value != "operator.note" else "run.started",
            ]
        )
    return _edit_text(rng, value)  # prev_hash, hash


TAMPERS = ("payload", "column", "delete", "swap")


def tamper(rng: random.Random, rows: list[Row], how: str) -> tuple[list[Row], dict[str, Any]]:
    """A copy of ``rows`` with exactly one tamper, and what was done (to replay it in SQL)."""
    out = [list(r) for r in rows]
    n = len(out)
    if how == "payload":
        i = rng.randrange(n)
        out[i][4] = (_edit_payload if rng.random() < 0.5 else _edit_text)(rng, out[i][4])
        op = {"update": [(rows[i][0], "record", out[i][4])]}
    elif how == "column":
        i = rng.randrange(n)
        column = rng.choice(["kind", "recorded_at", "run_id", "prev_hash", "hash"])
        k = COLUMNS.index(column)
        out[i][k] = _different(rng, column, out[i][k])
        op = {"update": [(rows[i][0], column, out[i][k])]}
    elif how == "delete":  # any record but the last (that is truncation: see below)
        i = rng.randrange(n - 1)
        del out[i]
        op = {"delete": rows[i][0]}
    else:  # swap two records' contents: as stored (seq kept) or as read (order changed)
        i, j = sorted(rng.sample(range(n), 2))
        if rng.random() < 0.5:
            out[i], out[j] = [out[i][0], *out[j][1:]], [out[j][0], *out[i][1:]]
            op = {"swap": (rows[i][0], rows[j][0])}
        else:
            out[i], out[j] = out[j], out[i]
            op = {}
    tampered = [tuple(r) for r in out]
    assert tampered != rows
    return tampered, op  # type: ignore[return-value]


def _apply_sql(store: Store, rows: list[Row], op: dict[str, Any]) -> None:
    by_seq = {r[0]: r for r in rows}
    with store.engine.begin() as conn:
        for seq, column, value in op.get("update", []):
            conn.execute(
                sa.text(f"UPDATE audit_log SET {column} = :v WHERE seq = :s"),
                {"v": value, "s": seq},
            )
        if "delete" in op:
            conn.execute(sa.text("DELETE FROM audit_log WHERE seq = :s"), {"s": op["delete"]})
        if "swap" in op:
            a, b = op["swap"]
            conn.execute(sa.text("DELETE FROM audit_log WHERE seq IN (:a, :b)"), {"a": a, "b": b})
            insert = sa.text(
                "INSERT INTO audit_log (seq, recorded_at, kind, run_id, record, prev_hash, hash) "
                "VALUES (:seq, :recorded_at, :kind, :run_id, :record, :prev_hash, :hash)"
            )
            conn.execute(insert, [dict(zip(COLUMNS, (a, *by_seq[b][1:]), strict=True)),
                                  dict(zip(COLUMNS, (b, *by_seq[a][1:]), strict=True))])  # fmt: skip


def _restore(store: Store, rows: list[Row]) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_log"))
        conn.execute(
            sa.text(
                "INSERT INTO audit_log (seq, recorded_at, kind, run_id, record, prev_hash, hash) "
                "VALUES (:seq, :recorded_at, :kind, :run_id, :record, :prev_hash, :hash)"
            ),
            [dict(zip(COLUMNS, r, strict=True)) for r in rows],
        )


def test_every_single_tamper_is_detected(store: Store) -> None:
    # 1,000 trials on SQLite; 200 on PostgreSQL, whose rows are the same tuples (the chain
    # logic is the same, only reading them differs), to keep the suite fast.
    trials = 1000 if store.dialect == "sqlite" else 200
    sql_trials = 60 if store.dialect == "sqlite" else 24
    rows = fill_log(store)
    assert audit.verify(rows).ok and store.audit_verify().ok
    rng = random.Random(7)

    detected, kinds = 0, Counter()
    for trial in range(trials):
        how = TAMPERS[trial % len(TAMPERS)]
        tampered, _ = tamper(rng, rows, how)
        kinds[how] += 1
        detected += not audit.verify(tampered).ok
    assert detected == trials
    assert kinds == {how: trials // len(TAMPERS) for how in TAMPERS}

    # The same through the database: real UPDATE / DELETE statements, then Store.audit_verify.
    detected_sql, kinds = 0, Counter()
    for trial in range(sql_trials):
        how = TAMPERS[trial % len(TAMPERS)]
        tampered, op = tamper(rng, rows, how)
        if not op:  # a pure reorder of the rows read cannot be stored: seq is the key
            how = "swap"
            while not op:
                tampered, op = tamper(rng, rows, "swap")
        _apply_sql(store, rows, op)
        stored = list(store._audit_rows())
        assert stored == sorted(tampered, key=lambda r: r[0])  # the tamper is what is stored
        kinds[how] += 1
        detected_sql += not store.audit_verify().ok
        _restore(store, rows)
    assert detected_sql == sql_trials
    assert set(kinds) == set(TAMPERS)
    assert list(store._audit_rows()) == rows and store.audit_verify().ok


# --- what only an anchor catches --------------------------------------------------------------------


def test_truncation_needs_an_anchor(store: Store) -> None:
    rows = fill_log(store, n=20)
    early = Anchor(10, rows[9][6])
    anchor = store.audit_head()
    assert anchor == Anchor(20, rows[-1][6])
    execute(store, "DELETE FROM audit_log WHERE seq > 17")
    unanchored = store.audit_verify()
    assert (unanchored.ok, unanchored.records, unanchored.head) == (
        True,
        17,
        Anchor(17, rows[16][6]),
    )
    anchored = store.audit_verify(anchor)
    assert not anchored.ok
    assert anchored.problems == [
        "anchored record 20 is missing: the log has 17 record(s) (truncated)"
    ]
    assert store.audit_verify(early).ok  # an anchor vouches for the log up to itself only


def test_a_rewritten_chain_is_caught_by_the_anchor(store: Store) -> None:
    rows = fill_log(store, n=20)
    anchor = store.audit_head()
    before_edit = Anchor(4, rows[3][6])
    # Edit record 5's payload and recompute every hash from there on: a consistent chain.
    seq, recorded_at, kind, run_id, text, prev, _ = rows[4]
    payload = json.loads(text)["payload"]
    forged = record_text(seq, recorded_at, kind, run_id, {"forged": True, "was": payload})
    with store.engine.begin() as conn:
        for row in rows[4:]:
            new_text = forged if row[0] == 5 else row[4]
            digest = link(prev, new_text)
            conn.execute(
                sa.text(
                    "UPDATE audit_log SET record = :r, prev_hash = :p, hash = :h WHERE seq = :s"
                ),
                {"r": new_text, "p": prev, "h": digest, "s": row[0]},
            )
            prev = digest
    report = store.audit_verify()
    assert (report.ok, report.records) == (True, 20)  # without an anchor: undetectable
    assert report.head != anchor
    anchored = store.audit_verify(anchor)
    assert anchored.problems == [
        f"record 20: hash differs from the anchor {anchor} (the chain was rewritten)"
    ]
    assert store.audit_verify(before_edit).ok  # the rewrite began after this anchor


# --- anchors --------------------------------------------------------------------------------------


def test_anchor_parse_and_print() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    anchor = Anchor.parse(f"  42:{digest.upper()}\n")
    assert anchor == Anchor(42, digest)
    assert str(anchor) == f"42:{digest}"
    assert Anchor.parse(str(anchor)) == anchor


@pytest.mark.parametrize(
    "text",
    [
        "",
        "42",
        "42:",
        f":{'a' * 64}",
        f"x:{'a' * 64}",
        f"-1:{'a' * 64}",
        f"4 2:{'a' * 64}",
        f"42:{'a' * 63}",
        f"42:{'a' * 65}",
        f"42;{'a' * 64}",
        f"1.5:{'a' * 64}",
    ],
)
def test_anchor_parse_errors(text: str) -> None:
    with pytest.raises(ValueError, match="is not SEQ:HASH") as info:
        Anchor.parse(text)
    assert "tradeloom audit head" in str(info.value)


@pytest.mark.parametrize("text", [f"42:{'g' * 64}", f"42:{'0' * 63}O"])
def test_anchor_parse_rejects_a_hash_that_is_not_hex(text: str) -> None:
    with pytest.raises(ValueError, match="is not SEQ:HASH"):
        Anchor.parse(text)
