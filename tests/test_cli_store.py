"""The journal from the command line: ``tradeloom db``, ``tradeloom audit`` and
``tradeloom runs`` against real stores (two demo backtests, one parameter apart), including
a tampered audit log, a truncated one, an old schema and one-line errors for bad input."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
import tomllib
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest

import tradeloom
from tradeloom.cli import store_cmd
from tradeloom.cli.main import main
from tradeloom.store import Store

HASH = re.compile(r"^(\d+):([0-9a-f]{64})$")


class Demo:
    """A store holding two demo backtests: ``a`` (fast = 20), ``b`` (fast = 15)."""

    def __init__(self, root: Path) -> None:
        self.db = root / "journal.db"
        self.url = f"sqlite:///{self.db}"
        self.out_a, self.out_b = root / "a", root / "b"
        config = resources.files("tradeloom.demo") / "demo.toml"
        with resources.as_file(config) as path:
            assert main(["demo", "--out", str(self.out_a), "--store", self.url]) == 0
            assert main([
                "backtest", str(path), "--set", "strategy.params.fast=15",
                "--out", str(self.out_b), "--store", self.url,
            ]) == 0  # fmt: skip
        store = Store(self.url)
        runs = {Path(r["out_dir"]).name: r for r in (store.run(s.id) for s in store.runs())}
        store.close()
        self.a, self.b = runs["a"]["id"], runs["b"]["id"]
        self.run_a, self.run_b = runs["a"], runs["b"]

    def metrics(self, which: str) -> dict:
        return json.loads((getattr(self, f"out_{which}") / "metrics.json").read_text())

    def orders_csv(self, which: str) -> int:
        """Orders in the backtest's own orders.csv (one row per order)."""
        with (getattr(self, f"out_{which}") / "orders.csv").open(newline="") as fh:
            return sum(1 for _ in csv.DictReader(fh))

    def copy(self, tmp_path: Path) -> str:
        """A copy of the store (for tests that change it); its URL."""
        target = tmp_path / "copy.db"
        with sqlite3.connect(self.db) as src, sqlite3.connect(target) as dst:
            src.backup(dst)
        src.close()
        dst.close()
        return f"sqlite:///{target}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    return Demo(tmp_path_factory.mktemp("store-cli"))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def sql(url: str, statement: str, *params: object) -> list[tuple]:
    path = url.removeprefix("sqlite:///")
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(statement, params).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


# --- runs ---------------------------------------------------------------------------------------
def test_runs_list_shows_both_runs(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "runs", "list", "--store", demo.url)
    assert code == 0
    rows = {cells[0]: cells for cells in map(str.split, out.splitlines()) if len(cells) > 7}
    rows.pop("id")  # the header
    assert set(rows) == {demo.a, demo.b}
    for which, run_id in (("a", demo.a), ("b", demo.b)):
        m = demo.metrics(which)
        cells = rows[run_id]
        assert cells[3:6] == ["backtest", "finished", "sma"]  # mode, status, title
        assert cells[-3] == f"{m['total_return'] * 100:,.2f}%"
        assert cells[-2] == f"{demo.orders_csv(which):,}"
        assert cells[-1] == f"{m['num_fills']:,}"
    # the latest first
    assert out.index(demo.b) < out.index(demo.a)

    code, out, _ = run(capsys, "runs", "list", "--store", demo.url, "--json")
    listed = json.loads(out)
    assert [r["id"] for r in listed] == [demo.b, demo.a]
    assert listed[1]["fills"] == demo.metrics("a")["num_fills"]
    assert listed[1]["total_return"] == pytest.approx(demo.metrics("a")["total_return"])

    code, out, _ = run(capsys, "runs", "list", "--store", demo.url, "--limit", "1")
    assert demo.b in out and demo.a not in out
    assert "the latest 1 runs" in out
    code, out, _ = run(capsys, "runs", "list", "--store", demo.url, "--status", "failed")
    assert code == 0 and "no failed runs in" in out


def test_runs_show_provenance_counts_and_config(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "runs", "show", demo.a[:6], "--store", demo.url)
    assert code == 0
    r = demo.run_a
    assert f"run {demo.a}" in out
    assert re.search(rf"framework version\s+{re.escape(tradeloom.__version__)}", out)
    assert "tradeloom-strategies" in out
    for value in (r["code_hash"], r["config_hash"], r["data_fingerprint"]):
        assert len(value) == 64 and value in out
    [(cls, info)] = r["code"].items()
    assert cls == "tradeloom_strategies.sma_crossover.SmaCrossover" and cls in out
    assert f"sha256 {info['sha256']}" in out
    assert f"{info['files']} files in tradeloom_strategies" in out
    if r["git_commit"]:
        assert f"git commit {r['git_commit']}" in out
    m = demo.metrics("a")
    assert re.search(rf"Total return\s+{m['total_return'] * 100:,.2f}%", out)
    assert re.search(rf"\n\s+orders\s+{demo.orders_csv('a'):,}\s", out)
    assert re.search(rf"\n\s+fills\s+{m['num_fills']:,}\s", out)
    assert re.search(r"\n\s+risk events\s+0\s", out)
    config = tomllib.loads(out.split("config (secrets masked)\n", 1)[1])
    assert config["strategies"][0]["params"]["fast"] == 20
    assert config["data"]["params"]["symbols"] == ["AAPL", "IBM", "MSFT"]

    code, out, _ = run(capsys, "runs", "show", demo.b, "--store", demo.url, "--json")
    shown = json.loads(out)
    assert shown["id"] == demo.b
    assert shown["config"]["strategies"][0]["params"]["fast"] == 15
    assert shown["counts"]["orders"] == demo.orders_csv("b")
    assert shown["counts"]["fills"] == demo.metrics("b")["num_fills"]
    assert shown["counts"]["order_states"] > shown["counts"]["orders"]
    assert shown["counts"]["audit_records"] == 2  # run.started, run.finished


def test_runs_compare_says_only_the_config_differs(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "runs", "compare", demo.a, demo.b, "--store", demo.url)
    assert code == 0
    assert (
        "verdict: config differs (strategies.0.params.fast: 20 -> 15); "
        "code, data and plugins are the same"
    ) in out
    assert "strategies.0.params.fast: 20 -> 15" in out.split("config changes (a -> b):")[1]
    assert re.search(r"\n\s+code\s+\w{12}\s+\w{12}\s+same", out)
    assert re.search(r"\n\s+config\s+\w{12}\s+\w{12}\s+differs", out)
    ma, mb = demo.metrics("a"), demo.metrics("b")
    diff = (mb["total_return"] - ma["total_return"]) * 100
    assert re.search(
        rf"total_return\s+{ma['total_return'] * 100:,.2f}%\s+{mb['total_return'] * 100:,.2f}%"
        + r"\s+"
        + re.escape(f"{diff:+,.2f} pp"),
        out,
    )
    assert re.search(
        rf"num_fills\s+{ma['num_fills']}\s+{mb['num_fills']}\s+"
        + re.escape(f"{mb['num_fills'] - ma['num_fills']:+}"),
        out,
    )

    code, out, _ = run(capsys, "runs", "compare", demo.a, demo.b, "--store", demo.url, "--json")
    cmp = json.loads(out)
    assert cmp["config_changes"] == [{"path": "strategies.0.params.fast", "a": 20, "b": 15}]
    assert cmp["config_differs"] is True
    assert cmp["code_differs"] is cmp["data_differs"] is cmp["plugins_differ"] is False
    fills = next(m for m in cmp["metrics"] if m["name"] == "num_fills")
    assert fills["difference"] == mb["num_fills"] - ma["num_fills"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_runs_export_writes_every_row(
    fmt: str, demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "runs", "export", demo.a, "--format", fmt, "--out", str(tmp_path / "x"),
        "--store", demo.url,
    )  # fmt: skip
    assert code == 0
    files = {p.name for p in (tmp_path / "x").iterdir()}
    run_file = "run.json" if fmt == "csv" else "run.jsonl"
    tables = ("orders", "fills", "positions", "risk_events", "audit")
    assert files == {f"{name}.{fmt}" for name in tables} | {run_file}

    def records(name: str) -> list[dict]:
        path = tmp_path / "x" / f"{name}.{fmt}"
        with path.open(newline="") as fh:
            if fmt == "csv":
                return list(csv.DictReader(fh))
            return [json.loads(line) for line in fh]

    orders, fills = records("orders"), records("fills")
    store = Store(demo.url)
    try:
        assert len(orders) == len(store.table("orders", demo.a))  # every order state
    finally:
        store.close()
    assert len({o["client_order_id"] for o in orders}) == demo.orders_csv("a")
    assert len(fills) == demo.metrics("a")["num_fills"]
    assert len(records("audit")) == 2
    assert records("risk_events") == []
    listed = {line.split()[0]: line.split()[-1] for line in out.splitlines() if line.strip()}
    assert listed["orders"] == f"{len(orders):,}"
    assert listed["fills"] == f"{len(fills):,}"
    run_row = json.loads((tmp_path / "x" / run_file).read_text())
    assert run_row["id"] == demo.a and run_row["code_hash"] == demo.run_a["code_hash"]


def test_runs_prune_dry_run_then_real(
    demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = demo.copy(tmp_path)
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat(timespec="microseconds")
    sql(url, "UPDATE runs SET started_at = ? WHERE id = ?", old, demo.a)

    code, out, _ = run(capsys, "runs", "prune", "--older-than", "60d", "--store", url)
    assert code == 0 and "no runs in" in out and "60d" in out
    code, out, _ = run(capsys, "runs", "prune", "--older-than", "30d", "--dry-run", "--store", url)
    assert code == 0
    assert "would prune 1 run from" in out and demo.a in out and demo.b not in out
    assert sql(url, "SELECT count(*) FROM runs")[0][0] == 2

    asked: list[str] = []

    def refuse(text: str, abort: bool = False) -> bool:
        asked.append(text)
        if abort:
            raise store_cmd.typer.Abort()
        return False

    monkeypatch.setattr(store_cmd.typer, "confirm", refuse)
    code, out, err = run(capsys, "runs", "prune", "--older-than", "4w", "--store", url)
    assert code == 130 and "aborted" in err and len(asked) == 1
    assert sql(url, "SELECT count(*) FROM runs")[0][0] == 2

    code, out, _ = run(capsys, "runs", "prune", "--older-than", "30d", "--yes", "--store", url)
    assert code == 0
    assert f"pruned 1 run from sqlite:///{tmp_path / 'copy.db'}:\n  {demo.a}\n" in out
    assert sql(url, "SELECT id FROM runs") == [(demo.b,)]
    for table in ("orders", "fills", "positions", "equity", "risk_events"):
        assert sql(url, f"SELECT count(*) FROM {table} WHERE run_id = ?", demo.a)[0][0] == 0
    assert sql(url, "SELECT count(*) FROM orders WHERE run_id = ?", demo.b)[0][0] > 0
    # the audit log keeps the pruned run's records and says what was pruned
    assert sql(url, "SELECT count(*) FROM audit_log WHERE run_id = ?", demo.a)[0][0] == 2
    [(record,)] = sql(url, "SELECT record FROM audit_log WHERE kind = 'runs.pruned'")
    assert json.loads(record)["payload"]["runs"] == [demo.a]
    code, out, _ = run(capsys, "audit", "verify", "--store", url)
    assert code == 0 and "OK" in out
    code, _, err = run(capsys, "runs", "show", demo.a, "--store", url)
    assert code == 2 and f"no run '{demo.a}'" in one_error_line(err)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("7d", timedelta(days=7)), ("12h", timedelta(hours=12)), ("90m", timedelta(minutes=90)),
     ("2w", timedelta(weeks=2)), ("45s", timedelta(seconds=45)), ("1.5d", timedelta(hours=36))],
)  # fmt: skip
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert store_cmd.parse_duration(text) == expected


# --- audit --------------------------------------------------------------------------------------
def test_audit_verify_ok_then_an_edited_record_fails(
    demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = demo.copy(tmp_path)
    code, out, _ = run(capsys, "audit", "verify", "--store", url)
    assert code == 0
    assert re.search(r"records\s+6 checked", out)
    assert "OK: the chain is intact" in out

    finished = "SELECT seq, record FROM audit_log WHERE kind = 'run.finished' AND run_id = ?"
    [(seq, record)] = sql(url, finished, demo.a)
    edited = record.replace('"status":"finished"', '"status":"failed"')
    assert edited != record
    sql(url, "UPDATE audit_log SET record = ? WHERE seq = ?", edited, seq)

    code, out, err = run(capsys, "audit", "verify", "--store", url)
    assert code == 1
    assert f"record {seq}: hash does not match its content (edited)" in out
    assert "OK" not in out
    line = one_error_line(err)
    assert "failed verification: 1 problem" in line and f"record {seq}" in line

    code, out, _ = run(capsys, "audit", "verify", "--store", url, "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and report["records"] == 6
    assert report["problems"] == [f"record {seq}: hash does not match its content (edited)"]


def test_audit_truncation_and_rewrite_need_the_anchor(
    demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = demo.copy(tmp_path)
    code, out, _ = run(capsys, "audit", "head", "--store", url)
    assert code == 0
    anchor = out.strip()
    assert out == anchor + "\n"  # nothing else on stdout: it can be piped
    match = HASH.match(anchor)
    assert match is not None
    seq = int(match.group(1))
    last = sql(url, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
    assert last == [(seq, match.group(2))]

    code, out, _ = run(capsys, "audit", "verify", "--store", url, "--anchor", anchor)
    assert code == 0 and f"contains the anchored record {seq}" in out

    # Rewrite the last record with a freshly computed hash: the chain alone stays valid.
    from tradeloom.store import audit

    prev, recorded_at, kind, run_id = sql(
        url, "SELECT prev_hash, recorded_at, kind, run_id FROM audit_log WHERE seq = ?", seq
    )[0]
    forged = audit.record_text(seq, recorded_at, kind, run_id, {"status": "finished"})
    rehash = "UPDATE audit_log SET record = ?, hash = ? WHERE seq = ?"
    sql(url, rehash, forged, audit.chain_hash(prev, forged), seq)
    code, out, _ = run(capsys, "audit", "verify", "--store", url)
    assert code == 0
    code, out, err = run(capsys, "audit", "verify", "--store", url, "--anchor", anchor)
    assert code == 1
    assert f"record {seq}: hash differs from the anchor {anchor} (the chain was rewritten)" in out
    one_error_line(err)

    # Truncate: the shorter chain is still valid; only the anchor shows the loss.
    sql(url, "DELETE FROM audit_log WHERE seq = ?", seq)
    code, out, _ = run(capsys, "audit", "verify", "--store", url)
    assert code == 0 and re.search(rf"records\s+{seq - 1} checked", out)
    code, out, err = run(capsys, "audit", "verify", "--store", url, "--anchor", anchor)
    assert code == 1
    assert f"anchored record {seq} is missing: the log has {seq - 1} record(s) (truncated)" in out
    assert "(truncated)" in one_error_line(err)


def test_audit_head_of_an_empty_log_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "audit", "head", "--store", f"sqlite:///{tmp_path}/x.db")
    assert code == 1 and out == ""
    assert "audit log" in one_error_line(err) and "empty" in err


# --- db -----------------------------------------------------------------------------------------
def test_old_schema_is_refused_until_upgraded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    old = Store(url, check=False)
    assert old.upgrade("0001") == "0001"
    head = old.head()
    old.close()

    code, out, _ = run(capsys, "db", "current", "--store", url)
    assert code == 0
    assert re.search(r"revision\s+0001\n", out) and re.search(rf"head\s+{head}\n", out)
    assert f"out of date: run `tradeloom db upgrade --store {url}`" in out
    code, out, _ = run(capsys, "db", "current", "--store", url, "--json")
    assert json.loads(out) == {
        "store": url, "revision": "0001", "head": head, "up_to_date": False,
        "state": "out of date", "action": f"run `tradeloom db upgrade --store {url}`",
    }  # fmt: skip

    for command in (["runs", "list"], ["audit", "verify"], ["runs", "show", "abc"]):
        code, _, err = run(capsys, *command, "--store", url)
        assert code == 2, command
        line = one_error_line(err)
        assert f"is at schema revision 0001, this tradeloom needs {head}" in line
        assert f"run `tradeloom db upgrade --store {url}`" in line

    code, out, _ = run(capsys, "db", "upgrade", "--store", url)
    assert code == 0 and f"{url}: upgraded 0001 -> {head}" in out
    code, out, _ = run(capsys, "db", "current", "--store", url)
    assert code == 0 and out.rstrip().endswith("up to date")
    code, out, _ = run(capsys, "runs", "list", "--store", url)
    assert code == 0 and "no runs in" in out
    code, out, _ = run(capsys, "db", "upgrade", "--store", url)
    assert code == 0 and f"already at revision {head}" in out
    # the migration is an operator action: audited
    [(record,)] = sql(url, "SELECT record FROM audit_log WHERE kind = 'db.upgraded'")
    assert json.loads(record)["payload"] == {"from": "0001", "to": head}
    code, out, _ = run(capsys, "audit", "verify", "--store", url)
    assert code == 0 and "OK" in out


def test_db_upgrade_creates_a_new_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/new/x.db"
    code, out, _ = run(capsys, "db", "current", "--store", url)
    assert code == 0 and re.search(r"revision\s+\(none\)", out) and "no schema yet" in out
    code, out, _ = run(capsys, "db", "upgrade", "--store", url, "--revision", "0001")
    assert code == 0 and "upgraded (empty) -> 0001" in out
    code, _, err = run(capsys, "db", "upgrade", "--store", url, "--revision", "0000")
    assert code == 2 and "--revision '0000'" in one_error_line(err) and "0001, 0002" in err


# --- one-line errors ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with two failed runs whose ids share a prefix."""
    root = tmp_path_factory.mktemp("small")
    url = f"sqlite:///{root / 'small.db'}"
    store = Store(url)
    for run_id in ("abc111", "abc222"):
        store.record_failure(run_id, "backtest", {"mode": "backtest"}, {}, "RuntimeError: boom")
    store.close()
    (root / "not-a-db.db").write_text("hello\n")
    return url


def test_failed_runs_are_listed_and_shown(small: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "runs", "list", "--store", small, "--status", "failed")
    assert code == 0 and "abc111" in out and "abc222" in out
    code, out, _ = run(capsys, "runs", "show", "abc1", "--store", small)
    assert code == 0 and "run abc111" in out and "RuntimeError: boom" in out
    assert re.search(r"none recorded", out)  # no metrics


def _bad_inputs(small: str) -> list[tuple[list[str], int, str]]:
    folder = small.removeprefix("sqlite:///").rsplit("/", 1)[0]
    return [
        (["runs", "show", "zzz", "--store", small], 2, "no run 'zzz'"),
        (["runs", "show", "abc", "--store", small], 2, "matches 2 runs (abc111, abc222)"),
        (["runs", "show", "ab_1", "--store", small], 2, "no run 'ab_1'"),
        (["runs", "compare", "abc111", "nope", "--store", small], 2, "no run 'nope'"),
        (["runs", "export", "abc", "--out", folder, "--store", small], 2, "matches 2 runs"),
        (["runs", "export", "abc111", "--format", "xml", "--out", folder, "--store", small], 2,
         "--format 'xml': use csv or jsonl"),
        (["runs", "export", "abc111", "--out", f"{folder}/not-a-db.db", "--store", small], 2,
         "is a file; give a folder"),
        (["runs", "prune", "--older-than", "30 days", "--store", small], 2,
         "--older-than '30 days' is not a duration; use a number and a unit, e.g. 30d"),
        (["runs", "prune", "--older-than", "3x", "--store", small], 2, "90m or 2w"),
        (["runs", "list", "--status", "done", "--store", small], 2, "--status 'done'"),
        (["audit", "verify", "--anchor", "12", "--store", small], 2,
         "--anchor: anchor '12' is not SEQ:HASH"),
        (["audit", "verify", "--anchor", "x:" + "a" * 64, "--store", small], 2, "SEQ:HASH"),
        (["runs", "list", "--store", "mysql://x"], 2,
         "only SQLite (sqlite:///...) and PostgreSQL (postgresql+psycopg://...)"),
        (["runs", "list", "--store", "not a url"], 2, "is not a database URL; use sqlite:///"),
        (["runs", "list", "--store", "postgresql+psycopg://u:secret@127.0.0.1:1/journal"], 2,
         "check that the PostgreSQL server is running"),
        (["db", "current", "--store", "postgresql+psycopg://u:secret@127.0.0.1:1/journal"], 2,
         "u:***@127.0.0.1:1"),
        (["runs", "list", "--store", f"sqlite:///{folder}/not-a-db.db"], 2,
         "file is not a database; store.url points at a file that is not a SQLite database"),
        (["audit", "head", "--store", f"sqlite:///{folder}/not-a-db.db/x.db"], 2,
         "point store.url at a writable path"),
        (["db", "upgrade", "--revision", "0001", "--store", small], 2, "does not downgrade"),
    ]  # fmt: skip


BAD_IDS = [
    "unknown id",
    "ambiguous prefix",
    "wildcard prefix",
    "compare unknown",
    "export ambiguous",
    "export format",
    "export out is a file",
    "duration with a space",
    "duration unit",
    "status",
    "anchor without hash",
    "anchor seq",
    "mysql",
    "not a url",
    "unreachable pg",
    "pg password masked",
    "not a database",
    "folder is a file",
    "downgrade",
]


@pytest.mark.parametrize("case", range(len(BAD_IDS)), ids=BAD_IDS)
def test_bad_input_gives_one_error_line(
    case: int, small: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args, exit_code, fragment = _bad_inputs(small)[case]
    code, _, err = run(capsys, *args)
    line = one_error_line(err)
    assert code == exit_code, err
    assert fragment in line, line
    assert "secret" not in err
