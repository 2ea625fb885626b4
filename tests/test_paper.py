"""Paper sessions (``tradeloom run``, :class:`~tradeloom.live.runner.PaperRunner`): parity with
the backtest, pacing and late batches, the write-ahead journal, restarts refused, the CLI
(run / status / kill / resume), stale feeds (DF-01) and the kill switch (KS-01, KS-02).

Everything runs on the bundled ``us-stocks-daily`` data through the ``replay`` source; sessions
run in-process except where a second process is the point. Crash recovery: test_paper_crash.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from paper_strategies import (
    backtest_fills,
    deployment,
    journal_fills,
    paper_host,
    run_until,
    write_pair,
)

import tradeloom
from tradeloom.cli.main import main
from tradeloom.config import load_deployment
from tradeloom.errors import ConfigError
from tradeloom.live.runner import PaperRunner, SessionSummary
from tradeloom.live.session import Session, read_json
from tradeloom.model import Order, OrderStatus, OrderType, Side
from tradeloom.plugins import PluginHost
from tradeloom.risk.control import TradingState
from tradeloom.store import Store

DAY = 86_400
PACED = 4_000_000
"""Replay speed for daily bars the strategies keep up with: a bar every ~22 ms."""
FAST = 20_000_000
"""A daily bar every ~4 ms: a year plays in about 1.6 s."""


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return paper_host()


class Paper:
    """A folder with a journal and a sessions directory; builds runners."""

    def __init__(self, root: Path, host: PluginHost) -> None:
        self.root = root
        self.host = host
        self.url = f"sqlite:///{root / 'journal.db'}"
        self.store = Store(self.url)
        self.sessions = root / "sessions"

    def write(self, name: str, text: str) -> tuple[Path, Path]:
        return write_pair(self.root, name, text)

    def runner(self, config: Path, session: str, **kwargs: object) -> PaperRunner:
        resolved = load_deployment([config], host=self.host)
        return PaperRunner(
            resolved, session=Session.open(session, self.sessions), store=self.store,
            host=self.host, **kwargs,  # type: ignore[arg-type]
        )  # fmt: skip

    def backtest(self, config: Path) -> tradeloom.BacktestResult:
        return tradeloom.backtest(config, host=self.host)

    def cli(self, *args: str) -> list[str]:
        return [*args, "--sessions-dir", str(self.sessions)]


@pytest.fixture
def paper(tmp_path: Path, host: PluginHost) -> Paper:
    return Paper(tmp_path, host)


def positions_of(fills: list[tuple]) -> dict[str, float]:
    """Net quantity per symbol of :func:`fill_key` tuples (flat symbols left out)."""
    out: dict[str, float] = {}
    for _ts, symbol, side, quantity, _price in fills:
        out[symbol] = out.get(symbol, 0.0) + (quantity if side == "buy" else -quantity)
    return {s: q for s, q in out.items() if abs(q) > 1e-9}


def timestamps(result: tradeloom.BacktestResult) -> int:
    return len(result.equity)


# --- parity ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ibm_session(
    tmp_path_factory: pytest.TempPathFactory, host: PluginHost
) -> tuple[Paper, SessionSummary, tradeloom.BacktestResult]:
    """IBM 2010, sma-crossover, as fast as possible: one finished session and its backtest."""
    paper = Paper(tmp_path_factory.mktemp("ibm"), host)
    config, backtest = paper.write("ibm", deployment())
    summary = paper.runner(config, "ibm").run()
    return paper, summary, paper.backtest(backtest)


def test_a_paper_session_trades_exactly_as_the_backtest(
    ibm_session: tuple[Paper, SessionSummary, tradeloom.BacktestResult],
) -> None:
    paper, summary, result = ibm_session
    fills = backtest_fills(result)
    assert len(fills) == 17
    assert journal_fills(paper.store, summary.run_id) == fills
    assert (summary.status, summary.restarted, summary.fills) == ("finished", False, 17)
    assert summary.bars == timestamps(result) == 252
    assert summary.positions == positions_of(fills) == {"IBM": 10.0}
    assert summary.equity == pytest.approx(float(result.equity["equity"].iloc[-1]), rel=1e-12)


def test_a_multi_symbol_session_trades_exactly_as_the_backtest(paper: Paper) -> None:
    config, backtest = paper.write("three", deployment(symbols=("AAPL", "IBM", "MSFT")))
    summary = paper.runner(config, "three").run()
    result = paper.backtest(backtest)
    fills = backtest_fills(result)
    assert {f[1] for f in fills} == {"AAPL", "IBM", "MSFT"}
    assert journal_fills(paper.store, summary.run_id) == fills
    assert summary.bars == 3 * 252
    held = {s: q for s, q in summary.positions.items() if abs(q) > 1e-9}
    assert held == positions_of(fills)
    assert summary.equity == pytest.approx(float(result.equity["equity"].iloc[-1]), rel=1e-12)


def test_corporate_actions_apply_in_a_session_as_in_the_backtest(paper: Paper) -> None:
    text = deployment(
        symbols=("AAPL",), start="2005-01-01", end="2005-06-30", strategy="test-holder",
        params="quantity = 10, sell_at = 60",
    ).replace('symbols = ["AAPL"]', 'symbols = ["AAPL"], corporate_actions = "adj_close"')  # fmt: skip
    config, backtest = paper.write("split", text)
    result = paper.backtest(backtest)
    summary = paper.runner(config, "split").run()
    # 10 bought on the first bar, split 2:1 into 20, 5 sold on bar 60: 15 held.
    assert summary.positions == {"AAPL": 15.0}
    assert summary.equity == pytest.approx(float(result.equity["equity"].iloc[-1]), rel=1e-12)


def test_the_journal_is_written_ahead_and_verifies(
    ibm_session: tuple[Paper, SessionSummary, tradeloom.BacktestResult],
) -> None:
    paper, summary, result = ibm_session
    store = paper.store
    run = store.run(summary.run_id)
    assert (run["mode"], run["status"]) == ("paper", "finished")
    assert run["metrics"] == {"steps": summary.steps, "bars": 252, "late_batches": 0}
    assert run["cursor"] == result.equity.index[-1].value  # the last bar, fully processed
    rows = store.table("orders", summary.run_id)
    by_order: dict[str, dict[int, dict]] = {}
    for row in rows:
        by_order.setdefault(row["client_order_id"], {})[row["version"]] = row
    assert len(by_order) == summary.orders == 17
    for coid, versions in by_order.items():
        assert sorted(versions) == list(range(len(versions))), coid
        assert versions[0]["status"] == "pending", coid
        accepted = [v for v in versions.values() if v["status"] == "accepted"]
        assert len(accepted) == 1, coid
        assert versions[0]["id"] < accepted[0]["id"], f"{coid}: accepted journaled before v0"
    submitted = [r for r in store.table("audit", summary.run_id) if r["kind"] == "order.submitted"]
    assert len(submitted) == 17
    assert store.audit_verify().problems == []
    assert Session.open("ibm", paper.sessions).runner_pid() is None


# --- pacing ----------------------------------------------------------------------------------------


def test_a_paced_session_keeps_up_and_trades_as_the_backtest(paper: Paper) -> None:
    text = deployment(speed=PACED, end="2010-04-30")
    config, backtest = paper.write("paced", text)
    started = time.monotonic()
    summary = paper.runner(config, "paced").run()
    elapsed = time.monotonic() - started
    result = paper.backtest(backtest)
    span = (result.equity.index[-1] - result.equity.index[0]).total_seconds()
    assert elapsed >= 0.9 * span / PACED  # it was paced (~2.6 s for these 4 months)
    assert summary.late_batches == 0
    assert summary.steps == summary.bars == timestamps(result) == 82
    assert journal_fills(paper.store, summary.run_id) == backtest_fills(result) != []


def test_a_strategy_slower_than_the_bars_gets_late_batches_none_lost(
    paper: Paper, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A strategy sleeping 15 ms per bar with a bar every ~2 ms: the bars queue up and are
    handled several per step (counted as late, reported), none skipped; the fills are the
    backtest's."""
    text = deployment(
        speed=10 * PACED, end="2010-03-31", strategy="test-sleepy",
        params="sleep_ms = 15, quantity = 5",
    )  # fmt: skip
    config, backtest = paper.write("sleepy", text)
    # `tradeloom run` builds its own plugin host: give it one with the test strategies.
    monkeypatch.setattr("tradeloom.plugins.PluginHost", paper_host)
    argv = ["run", str(config), "--no-sandbox", "--store", paper.url, "--session", "sleepy"]
    assert main(paper.cli(*argv)) == 0
    printed = capsys.readouterr()
    status = read_json(Session.open("sleepy", paper.sessions).status_file)
    result = paper.backtest(backtest)
    late = status["late_batches"]
    assert late > 0
    assert status["bars"] == timestamps(result) == 61  # none lost
    assert status["steps"] == status["bars"] - late
    assert "late batches" in printed.out and str(late) in printed.out
    assert f"{late} bar batches arrived while the strategies were still busy" in printed.err
    assert "none skipped" in printed.err
    run = paper.store.run(status["run_id"])
    assert run["metrics"]["late_batches"] == late
    assert journal_fills(paper.store, status["run_id"]) == backtest_fills(result) != []


# --- restarts refused -----------------------------------------------------------------------------


def test_a_restart_with_another_deployment_is_refused(paper: Paper) -> None:
    config, _ = paper.write("same", deployment(end="2010-06-30"))
    first = paper.runner(config, "same").run()
    counts = paper.store.counts(first.run_id)
    changed, _ = paper.write(
        "changed", deployment(end="2010-06-30").replace("fast = 5", "fast = 6")
    )
    with pytest.raises(ConfigError, match="was started with another deployment") as refused:
        paper.runner(changed, "same").run()
    assert "start a new --session to change it" in str(refused.value)
    assert paper.store.counts(first.run_id) == counts  # nothing written
    assert [r.id for r in paper.store.runs()] == [first.run_id]


def test_a_second_runner_of_a_running_session_is_refused(paper: Paper) -> None:
    """One runner per session: a second one (in this process, or `tradeloom run` again) is
    refused while the first process runs; SIGTERM stops the first one gracefully."""
    config, _ = paper.write("busy", deployment(speed=PACED))
    argv = ["run", str(config), "--no-sandbox", "--store", paper.url, "--session", "busy"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradeloom", *paper.cli(*argv)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    session = Session.open("busy", paper.sessions)
    try:
        deadline = time.monotonic() + 60
        while session.runner_pid() != proc.pid or not session.status_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        with pytest.raises(ConfigError, match=rf"already running \(pid {proc.pid}\)"):
            paper.runner(config, "busy").run()
        assert main(paper.cli(*argv)) == 2
        assert session.runner_pid() == proc.pid
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped" in out
    status = read_json(session.status_file)
    assert status["status"] == "stopped" and 0 < status["bars"] < 252
    assert paper.store.run(status["run_id"])["status"] == "stopped"
    assert session.runner_pid() is None


def test_a_stop_takes_effect_after_the_current_step_even_with_a_backlog(paper: Paper) -> None:
    config, _ = paper.write("backlog", deployment())
    runner = paper.runner(config, "backlog", max_batch=1)
    at_stop: list[int] = []
    stop = runner.stop

    def stop_and_note() -> None:  # the bars done when the stop was asked (timing-free check)
        at_stop.append(runner._bars)
        stop()

    runner.stop = stop_and_note  # type: ignore[method-assign]
    summary = run_until(runner, lambda r: r._bars >= 60)
    assert summary.status == "stopped"
    (asked,) = at_stop
    assert 60 <= asked < 252
    assert summary.bars <= asked + 1  # at most the step in progress, never the queued backlog


# --- the CLI -------------------------------------------------------------------------------------


def test_cli_run_prints_the_summary_and_status_reports_the_session(
    paper: Paper, capsys: pytest.CaptureFixture[str]
) -> None:
    config, backtest = paper.write("cli", deployment())
    argv = ["run", str(config), "--no-sandbox", "--store", paper.url, "--session", "cli"]
    assert main(paper.cli(*argv)) == 0
    out = capsys.readouterr().out
    for text in ("tradeloom session cli", "finished", " / 252", "17 / 17", "IBM 10", "99,999.30"):
        assert text in out, out
    assert main(paper.cli("status", "--session", "cli", "--json")) == 0
    status = json.loads(capsys.readouterr().out)
    result = paper.backtest(backtest)
    assert status["status"] == "finished" and status["runner"] == "not running"
    assert status["mode"] == "paper" and status["bars"] == 252
    assert status["positions"] == positions_of(backtest_fills(result)) == {"IBM": 10.0}
    assert status["working_orders"] == [] and status["persisted_states"] == {}
    assert status["run_id"] == Session.open("cli", paper.sessions).info()["run_id"]
    assert main(paper.cli("status", "--session", "cli")) == 0
    table = capsys.readouterr().out
    assert "not running" in table and "IBM 10" in table and "all active" in table


def test_cli_kill_without_a_runner_halts_the_next_run_until_resume(
    paper: Paper, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = paper.write("halt", deployment(speed=FAST))
    first = run_until(paper.runner(config, "halt"), lambda r: len(r.engine.fills) >= 4)
    assert first.status == "stopped" and first.bars < 252
    stopped_at = paper.store.run(first.run_id)["cursor"]
    session = Session.open("halt", paper.sessions)

    assert main(paper.cli("kill", "--session", "halt", "--reason", "desk closed")) == 0
    assert "HALTED (no runner is running" in capsys.readouterr().out
    persisted = read_json(session.state_file)["states"]
    assert persisted["global"]["state"] == "halted"
    assert persisted["global"]["reason"] == "desk closed"

    argv = ["run", str(config), "--no-sandbox", "--store", paper.url, "--session", "halt"]
    assert main(paper.cli(*argv)) == 0
    capsys.readouterr()
    orders = paper.store.table("orders", first.run_id)
    after = {}
    for row in orders:
        if row["ts"] > stopped_at:
            after.setdefault(row["client_order_id"], []).append(row)
    assert after, "the strategy placed no order after the restart"
    for coid, rows in after.items():
        assert [r["status"] for r in rows] == ["pending", "rejected"], coid
        assert "risk rule trading-state: global is halted (desk closed)" in rows[-1]["reason"]
    assert [f for f in journal_fills(paper.store, first.run_id) if f[0] > stopped_at] == []
    assert list(session.control_dir.glob("*.json")) == []  # the kill was taken
    kills = [r for r in paper.store.table("audit", first.run_id) if r["kind"] == "operator.kill"]
    assert len(kills) == 1

    assert main(paper.cli("status", "--session", "halt", "--json")) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["persisted_states"] == {"global": "halted"}
    assert status["trading_states"] == {"global": "halted"}
    assert status["status"] == "finished" and status["working_orders"] == []

    assert main(paper.cli("resume", "--session", "halt", "--reason", "desk open")) == 0
    assert "global active again" in capsys.readouterr().out
    assert read_json(session.state_file)["states"] == {}
    assert main(paper.cli("status", "--session", "halt", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["persisted_states"] == {}


def test_cli_resume_sent_to_a_running_halted_session_lets_it_trade_again(
    paper: Paper, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A strategy that buys every bar, halted by `tradeloom kill` while no runner runs: the
    next `tradeloom run` cancels its working order and refuses its buys, until `tradeloom
    resume` (sent to the running runner) lets them through again."""
    text = deployment(speed=FAST, strategy="test-buy-every-bar", params="quantity = 1")
    config, _ = paper.write("resume", text)
    first = run_until(paper.runner(config, "resume"), lambda r: r._bars >= 20)
    assert first.status == "stopped"
    (working,) = [o.client_order_id for o in first_working(paper, first.run_id)]
    assert main(paper.cli("kill", "--session", "resume")) == 0

    monkeypatch.setattr("tradeloom.plugins.PluginHost", paper_host)
    resumed: list[int] = []

    def operator() -> None:  # another terminal: resume once 10 buys were refused
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = paper.store.table("orders", first.run_id)
            if sum(r["status"] == "rejected" for r in rows) >= 10:
                resumed.append(main(paper.cli("resume", "--session", "resume")))
                return
            time.sleep(0.01)

    thread = threading.Thread(target=operator)
    thread.start()
    argv = ["run", str(config), "--no-sandbox", "--store", paper.url, "--session", "resume"]
    try:
        assert main(paper.cli(*argv)) == 0
    finally:
        thread.join()
    assert resumed == [0]
    assert "resume of global sent to the runner" in capsys.readouterr().out
    rows = sorted(paper.store.table("orders", first.run_id), key=lambda r: r["id"])
    final = {r["client_order_id"]: r for r in rows}  # the last version of each order
    assert final[working]["status"] == "canceled"  # canceled by the kill at the restart
    assert "kill switch" in final[working]["reason"]
    later = sorted((c for c in final if _seq(c) > _seq(working)), key=_seq)
    outcome = ["refused" if final[c]["status"] == "rejected" else "sent" for c in later]
    refused = outcome.count("refused")
    assert refused >= 10 and outcome == ["refused"] * refused + ["sent"] * (len(later) - refused)
    assert len(later) - refused >= 10  # trading again after the resume
    assert all("global is halted" in final[c]["reason"] for c in later[:refused])
    assert read_json(Session.open("resume", paper.sessions).state_file)["states"] == {}
    resumes = [
        r for r in paper.store.table("audit", first.run_id) if r["kind"] == "operator.resume"
    ]
    assert len(resumes) == 1


def first_working(paper: Paper, run_id: str) -> list[Order]:
    """The orders a stopped session left working (journaled)."""
    state = paper.store.session_state(run_id)
    return [o for o, _ in state.orders.values() if o.status.is_working]


def _live(text: str) -> str:
    return text.replace('mode = "paper"', 'mode = "live"', 1)


def test_cli_a_live_deployment_with_the_bundled_components_is_refused(
    paper: Paper, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = paper.write("live", _live(deployment()))
    argv = ["run", str(config), "--no-sandbox", "--store", paper.url, "--session", "live"]
    assert main(paper.cli(*argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Traceback" not in err
    assert "does not support mode 'live'" in err
    assert not Session.open("live", paper.sessions).root.exists()
    assert paper.store.runs() == []


def test_cli_live_mode_without_live_is_refused_in_one_line(
    paper: Paper, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a broker and a feed that can trade live, mode = "live" still needs --live."""
    text = _live(deployment()).replace('type = "replay"', 'type = "test-live-replay"')
    text += '\n[broker]\ntype = "test-live-simulated"\n'
    config, _ = paper.write("live", text)
    monkeypatch.setattr("tradeloom.plugins.PluginHost", paper_host)
    argv = ["run", str(config), "--no-sandbox", "--store", paper.url, "--session", "live"]
    assert main(paper.cli(*argv)) == 2
    err = capsys.readouterr().err.strip()
    (line,) = err.splitlines()
    assert (
        line.startswith("error: ")
        and 'mode = "live" trades real money: pass --live to confirm' in line
    )
    assert paper.store.runs() == []
    assert Session.open("live", paper.sessions).runner_pid() is None


def test_cli_run_sandboxed_trades_as_the_backtest(
    paper: Paper, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default: strategies in their own processes (tradeloom.live.sandbox)."""
    try:
        from tradeloom.live import sandbox
    except ImportError:
        sandbox = None
    if not callable(getattr(sandbox, "sandboxed", None)):
        pytest.skip("tradeloom.live.sandbox has no sandboxed() yet (the sandbox is not finished)")
    config, backtest = paper.write("boxed", deployment(end="2010-06-30"))
    argv = ["run", str(config), "--store", paper.url, "--session", "boxed"]
    assert main(paper.cli(*argv)) == 0
    capsys.readouterr()
    status = read_json(Session.open("boxed", paper.sessions).status_file)
    sandboxed = status["sandbox"]  # what isolation each strategy got, or "off (...)"
    assert not str(sandboxed).startswith("off")
    assert "sma-crossover" in sandboxed or sandboxed == "strategies in child processes"
    assert status["status"] == "finished"
    result = paper.backtest(backtest)
    assert journal_fills(paper.store, status["run_id"]) == backtest_fills(result) != []


# --- DF-01: a stale feed -------------------------------------------------------------------------


def test_a_stalled_feed_makes_the_instrument_reducing_only(paper: Paper) -> None:
    """The replay stops delivering after 20 bars while the stream stays open: with
    --stale-after 5 days the instrument goes reducing-only (persisted); adding orders are
    refused, cancels pass — after a restart the strategy's buys are refused too."""
    text = deployment(
        speed=FAST, strategy="test-buy-every-bar", params="quantity = 1", replay="stall_after = 20"
    )
    config, _ = paper.write("stale", text)
    stale_after = 5 * DAY
    runner = paper.runner(config, "stale", stale_after=stale_after)
    summary = run_until(runner, lambda r: "instrument:IBM" in r.control.states, timeout=30)
    assert summary.status == "stopped" and summary.bars == 20
    control = runner.control
    assert control is not None
    assert control.state("instrument:IBM") is TradingState.REDUCING
    (event,) = [e for e in control.events if e.scope == "instrument:IBM"]
    assert (event.kind, event.state, event.by, event.rule) == (
        "state", "reducing", "runner", "feed-monitor",
    )  # fmt: skip
    assert event.reason.startswith("stale feed: no bar for") and event.observed > stale_after
    session = Session.open("stale", paper.sessions)
    assert read_json(session.status_file)["trading_states"] == {"instrument:IBM": "reducing"}
    assert read_json(session.state_file)["states"]["instrument:IBM"]["state"] == "reducing"
    strategy = runner.engine.strategies[0][1]  # type: ignore[union-attr]
    assert len(strategy.placed) == 20 and strategy.refused == []  # before the stall: all pass

    # The gate, as the runner left it: a buy is refused, the working order's cancel passes.
    engine = runner.engine
    assert engine is not None
    (working,) = runner.broker.open_orders()
    buy = Order(
        "probe-1", "IBM", Side.BUY, 1.0, OrderType.LIMIT, 10.0, strategy_id=working.strategy_id
    )
    reject = control.check(buy, engine.risk_view())
    assert reject is not None and reject.rule == "trading-state"
    assert "reducing-only and the order adds risk" in reject.reason
    assert control.check_cancel(working, engine.risk_view()) is None

    # A restart: the state is still there; the strategy's buys are refused, its cancel passes.
    again = paper.runner(config, "stale", stale_after=stale_after)
    run_until(again, lambda r: r._bars >= 10, timeout=30)
    strategy = again.engine.strategies[0][1]  # type: ignore[union-attr]
    assert strategy.refused, "no buy was refused after the stall"
    assert len(strategy.refused) == len(strategy.placed)
    assert all("reducing-only and the order adds risk" in why for _, why in strategy.refused)
    assert strategy.canceled == [working.client_order_id]
    assert again.broker.open_orders() == []


# --- KS-01 / KS-02: the kill switch --------------------------------------------------------------


def _seq(coid: str) -> int:
    return int(coid.rpartition("-")[2])


def test_the_kill_switch_stops_a_flood_cancels_everything_and_survives_a_restart(
    paper: Paper,
) -> None:
    """A strategy floods 5 far-away limit buys per bar; the operator's kill (as `tradeloom
    kill` leaves it, while the runner runs) halts the account at once: no order accepted after
    it, every working order canceled, HALTED persisted, and still HALTED after a restart."""
    text = deployment(speed=PACED, strategy="test-flood", params="per_bar = 5")
    config, _ = paper.write("flood", text)
    runner = paper.runner(config, "flood")
    session = Session.open("flood", paper.sessions)
    phase = {"killed_at_bars": 0}

    def operator(r: PaperRunner) -> bool:
        if not phase["killed_at_bars"]:
            if len(r.engine.orders) >= 30:  # type: ignore[union-attr]
                session.command("kill", reason="flood", flatten=False)
                phase["killed_at_bars"] = r._bars
            return False
        # Stop once the kill was applied and the strategy kept flooding for 10 more bars.
        return list(session.control_dir.glob("*.json")) == [] and (
            r._bars >= phase["killed_at_bars"] + 10
        )

    summary = run_until(runner, operator, timeout=60)
    assert summary.status == "stopped"
    state = read_json(session.state_file)["states"]["global"]
    assert (state["state"], state["reason"], state["by"]) == ("halted", "flood", "operator")
    halted_at = state["since"]
    engine = runner.engine
    assert engine is not None
    orders = sorted(engine.orders.values(), key=lambda o: _seq(o.client_order_id))
    refused = [o for o in orders if "trading-state" in o.reason]
    assert len(refused) >= 40  # the flood went on after the kill, all of it refused
    first_refused = _seq(refused[0].client_order_id)
    sent = [o for o in orders if o.status is not OrderStatus.REJECTED]
    assert sent and all(_seq(o.client_order_id) < first_refused for o in sent)  # KS-02
    assert [o for o in sent if o.created_ts > halted_at] == []
    assert all(o.status is OrderStatus.CANCELED for o in sent)  # KS-01: every one canceled
    assert runner.broker.open_orders() == []
    assert read_json(session.status_file)["working_orders"] == []
    (kill,) = [
        r for r in paper.store.table("audit", summary.run_id) if r["kind"] == "operator.kill"
    ]
    assert json.loads(kill["record"])["payload"]["canceled"] == [o.client_order_id for o in sent]
    journal: dict[str, list[dict]] = {}
    for row in paper.store.table("orders", summary.run_id):
        journal.setdefault(row["client_order_id"], []).append(row)
    for coid, rows in journal.items():
        last = max(rows, key=lambda r: r["version"])
        assert last["status"] in ("canceled", "rejected"), coid
        if _seq(coid) >= first_refused:
            assert "accepted" not in [r["status"] for r in rows], coid

    # A restart: still HALTED, every new order refused, nothing working.
    again = paper.runner(config, "flood")
    run_until(again, lambda r: r._bars >= 10, timeout=60)
    assert again.control.state() is TradingState.HALTED  # type: ignore[union-attr]
    new = [o for o in again.engine.orders.values() if _seq(o.client_order_id) > len(orders)]  # type: ignore[union-attr]
    assert len(new) >= 50
    assert all(o.status is OrderStatus.REJECTED and "halted (flood)" in o.reason for o in new)
    assert again.broker.open_orders() == []
    assert read_json(session.state_file)["states"]["global"]["state"] == "halted"
    assert paper.store.audit_verify().problems == []


# --- fault policy, periodic reconciliation, the backtest sandbox switch ----------------------------
def test_the_backtest_sandbox_switch_gives_identical_results(tmp_path: Path) -> None:
    from tradeloom.cli.main import main

    examples = Path(__file__).parent.parent / "examples" / "sma-us-stocks.toml"
    plain, boxed = tmp_path / "plain", tmp_path / "boxed"
    assert main(["backtest", str(examples), "--no-journal", "--out", str(plain)]) == 0
    assert main(["backtest", str(examples), "--no-journal", "--sandbox", "--out", str(boxed)]) == 0
    for name in ("trades.csv", "orders.csv", "equity.csv"):
        assert (plain / name).read_text() == (boxed / name).read_text(), name


def test_a_position_difference_found_while_running_halts_the_session(
    paper: Paper, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Periodic reconciliation: the journal's fills against the broker's positions; a
    difference (here the journal is made to report one unit too many) halts the account."""
    config, _ = paper.write("rec", deployment())
    real = Store.fill_positions

    def off_by_one(self: Store, run_id: str) -> dict[str, float]:
        positions = real(self, run_id)
        return {**positions, "IBM": positions["IBM"] + 1.0} if "IBM" in positions else positions

    monkeypatch.setattr(Store, "fill_positions", off_by_one)
    runner = paper.runner(config, "rec", reconcile_every=10, max_batch=1)
    summary = runner.run()
    assert runner.control is not None
    halts = [e for e in runner.control.events if e.kind == "state" and e.state == "halted"]
    assert len(halts) == 1 and halts[0].rule == "reconciliation"
    assert "IBM: journal 11, broker 10" in halts[0].reason
    kinds = [r["kind"] for r in paper.store.table("audit", summary.run_id)]
    assert "session.reconcile_failed" in kinds
    after = [e for e in runner.control.events if e.kind == "reject" and e.ts > halts[0].ts]
    assert after and all(e.rule == "trading-state" for e in after)


def test_an_unknown_fault_policy_is_one_clear_error(paper: Paper) -> None:
    config, _ = paper.write("fault", deployment())
    with pytest.raises(ConfigError, match="on_fault 'explode': use halt, cancel"):
        paper.runner(config, "fault", on_fault="explode")


@pytest.mark.parametrize("policy", ["halt", "flatten"])
def test_a_faulted_sandboxed_strategy_gets_the_configured_policy(paper: Paper, policy: str) -> None:
    """SB-01 in a session: the strategy raises at its 5th bar in its sandbox; the runner halts
    its scope — with "halt" its position and working order stay; with "flatten" the working
    order is canceled and the position closed by a runner exit."""
    config, _ = paper.write(
        f"faulty-{policy}", deployment(strategy="test-faulty", params="quantity = 10, fail_at = 5")
    )
    runner = paper.runner(config, f"faulty-{policy}", sandbox=True, on_fault=policy, max_batch=1)
    summary = runner.run()
    assert summary.status == "finished"
    assert runner.control is not None and runner.engine is not None
    assert runner.control.state("strategy:test-faulty") is TradingState.HALTED
    halts = [e for e in runner.control.events if e.kind == "state" and e.rule == "sandbox"]
    assert len(halts) == 1 and "strategy faulted" in halts[0].reason
    (strategy,) = [s for _, s in runner.engine.strategies]
    assert strategy.state == "faulted"
    working = runner.engine.broker.open_orders()
    if policy == "halt":
        assert summary.positions == {"IBM": 10.0}
        assert len(working) == 1  # the far limit buy stays
    else:
        assert summary.positions == {}
        assert working == []
        exits = [o for o in runner.engine.orders.values() if o.strategy_id == "risk"]
        assert len(exits) == 1 and exits[0].status is OrderStatus.FILLED
