"""The strategy sandbox (issue 7, deliverable 4): a strategy in its own isolated process.

* parity: the demo strategy (``sma-crossover`` on the example stocks, with the example costs)
  and a probe that reads every part of the Context and places, replaces and cancels orders
  give the same results in the sandbox as in process;
* RELIABILITY SB-01..SB-04: a strategy that raises, hangs, hogs memory or CPU is FAULTED while
  the run (and the other strategies) go on; a strategy holds no secret and reaches no network;
  it cannot speak for another strategy or lift a halt;
* the isolation report, the protocol's strict parsing, the scrubbed environment.

The sandboxed children are started once per module, all at once (each imports numpy and pandas,
about two seconds of CPU), with a canary API key in the runner's environment: every test
below also checks that it never reaches a child.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from loguru import logger

import tradeloom
from tradeloom.data import DatasetSource, MarketData
from tradeloom.errors import ConfigError, RunError
from tradeloom.execution import SimulatedBroker
from tradeloom.live import protocol
from tradeloom.live.protocol import ProtocolError
from tradeloom.live.sandbox import (
    SandboxedStrategy,
    SandboxLimits,
    SandboxState,
    child_environment,
    sandboxed,
)
from tradeloom.model import Bar
from tradeloom.risk.control import RiskControl, TradingState
from tradeloom.strategy import Context, Strategy
from tradeloom_strategies.sma_crossover import SmaCrossover

LINUX_ROOT = sys.platform.startswith("linux") and os.geteuid() == 0
STOCKS = ["AAPL", "GOOG", "IBM", "MSFT"]
DEMO = {"fast": 20, "slow": 100, "fraction": 0.9, "direction": "long_short"}
"""``examples/sma-us-stocks.toml``: its strategy, symbols and period, with base-costs.toml."""
CANARY = "tlcanary-" + secrets.token_hex(16)


def demo_broker() -> SimulatedBroker:
    return SimulatedBroker(
        slippage_bps=2, fees={"model": "percent", "rate": 0.0005, "minimum": 1.0}
    )


class Victim(Strategy):
    """An in-process strategy with a working order (``victim-1``, far below the market)."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if ctx.bar_count(bar.symbol) == 1 and bar.symbol == "IBM":
            ctx.buy("IBM", 1, limit=1.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Every sandboxed child of this module, started concurrently with a canary API key in the
    runner's environment; a canary key file (0600) and a listening socket for SB-03."""
    folder = tmp_path_factory.mktemp("canary")
    key_file = folder / "broker.key"
    key_file.write_text(CANARY)
    key_file.chmod(0o600)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    port = server.getsockname()[1]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TL_CANARY_KEY", CANARY)
        patch.setenv("BROKER_API_SECRET", CANARY)
        spin = SandboxLimits(callback_deadline_s=0.5)
        children = {
            "sma": SandboxedStrategy(SmaCrossover(**DEMO), strategy_id="sma", start=False),
            "probe": SandboxedStrategy("sandbox_strategies:Probe", start=False),
            "raiser": SandboxedStrategy("sandbox_strategies:Raiser", start=False),
            "spin": SandboxedStrategy(
                "sandbox_strategies:Misbehave", {"what": "spin"}, limits=spin, start=False
            ),
            "allocate": SandboxedStrategy(
                "sandbox_strategies:Misbehave", {"what": "allocate", "mb": 2048},
                memory_mb=512, start=False,
            ),
            "burn": SandboxedStrategy(
                "sandbox_strategies:Misbehave", {"what": "burn"}, cpu_seconds=1,
                callback_deadline_s=30, start=False,
            ),
            "snoop": SandboxedStrategy(
                "sandbox_strategies:Snoop", {"key_file": str(key_file), "port": port},
                start=False,
            ),
            "forge-api": SandboxedStrategy("sandbox_strategies:Forger", start=False),
            "forge-order": SandboxedStrategy(
                "sandbox_strategies:Forger", {"how": "raw-order"}, start=False
            ),
            "forge-resume": SandboxedStrategy(
                "sandbox_strategies:Forger", {"how": "raw-resume"}, start=False
            ),
            "echo-split": SandboxedStrategy("sandbox_strategies:HistoryEcho", start=False),
            "echo-stream": SandboxedStrategy(
                "sandbox_strategies:HistoryEcho", {"n": 10}, start=False
            ),
        }  # fmt: skip
        sandboxed(list(children.items()))  # starts them all at once
    yield {"children": children, "key_file": key_file, "server": server, "port": port}
    server.close()
    for child in children.values():
        child.close()


@pytest.fixture(scope="module")
def stocks() -> MarketData:
    return DatasetSource(name="us-stocks-daily", symbols=STOCKS, adjusted=True).load(
        "2004-01-01", "2013-03-01"
    )


@pytest.fixture(scope="module")
def half_year() -> MarketData:
    """IBM and MSFT, first half of 2010: 124 daily bars each."""
    return DatasetSource(name="us-stocks-daily", symbols=["IBM", "MSFT"], adjusted=True).load(
        "2010-01-01", "2010-06-30"
    )


def bar_ts(market: MarketData, i: int) -> int:
    return int(market.frames["IBM"].index.as_unit("ns").asi8[i])


def no_canary(*texts: object) -> None:
    for text in texts:
        assert CANARY not in str(text)


# --- parity -----------------------------------------------------------------------------------
def test_demo_strategy_trades_identically_in_the_sandbox(world, stocks) -> None:
    inproc = tradeloom.run_backtest(stocks, [("sma", SmaCrossover(**DEMO))], broker=demo_broker())
    sandbox = world["children"]["sma"]
    boxed = tradeloom.run_backtest(stocks, [("sma", sandbox)], broker=demo_broker())

    assert len(inproc.trades) == 105
    pd.testing.assert_frame_equal(boxed.trades, inproc.trades)
    pd.testing.assert_frame_equal(boxed.equity, inproc.equity)
    pd.testing.assert_frame_equal(boxed.orders, inproc.orders)
    pd.testing.assert_frame_equal(boxed.fills, inproc.fills)
    assert boxed.metrics == inproc.metrics
    assert sandbox.state is SandboxState.STOPPED  # on_stop ends the child
    assert sandbox.fault is None and sandbox.pid is None
    assert sandbox.callbacks == {"on_start", "on_bar"}  # the engine calls only these

    # The next run starts a fresh child.
    small = {"fast": 5, "slow": 20, "quantity": 10}
    again = SandboxedStrategy(SmaCrossover(**small), start=False)
    with pytest.raises(RunError, match="was never started: call start"):
        tradeloom.run_backtest(stocks, [("sma", again)])
    sandbox._params_json = json.dumps(small)  # the same object, other params, a new run
    rerun = tradeloom.run_backtest(stocks, [("sma", sandbox)])
    assert sandbox.state is SandboxState.STOPPED and sandbox.fault is None
    solo = tradeloom.run_backtest(stocks, [("sma", SmaCrossover(**small))])
    assert len(solo.trades) > 100
    pd.testing.assert_frame_equal(rerun.trades, solo.trades)


def test_every_context_read_and_order_kind_behaves_identically(world, half_year) -> None:
    lines: list[tuple[str, str]] = []
    sink = logger.add(
        lambda m: lines.append((m.record["level"].name, m.record["message"])),
        filter=lambda r: r["extra"].get("strategy") == "probe",
        format="{message}",
    )
    try:
        from sandbox_strategies import Probe

        inproc = tradeloom.run_backtest(half_year, [("probe", Probe())])
    finally:
        logger.remove(sink)
    sandbox = world["children"]["probe"]
    boxed = tradeloom.run_backtest(half_year, [("probe", sandbox)])

    assert sandbox.fault is None, sandbox.fault_traceback
    assert list(sandbox.logs) == lines
    assert len(lines) > 124  # a line per timestamp, plus the orders' updates and fills
    text = "\n".join(m for _, m in lines)
    for expected in (
        "kept 'probe-1'",
        "cancel refused: cancel(): no order 'nobody-1' of strategy 'probe'",
        "order refused: strategy 'probe' ordered unknown symbol 'NOPE'; this run trades IBM, MSFT",
        "tif refused: order(): unknown tif 'forever'",
        "replaced: ",
    ):
        assert expected in text
    pd.testing.assert_frame_equal(boxed.orders, inproc.orders)
    pd.testing.assert_frame_equal(boxed.fills, inproc.fills)
    pd.testing.assert_frame_equal(boxed.equity, inproc.equity)
    kinds = set(boxed.orders["type"])
    assert {"limit", "market", "stop", "trailing_stop", "market_on_close"} <= kinds
    assert set(boxed.orders["status"]) >= {"canceled", "filled"}


def echo_lines(market: Any, strategy: Strategy, **run: Any) -> tuple[Any, list[str]]:
    lines: list[str] = []
    sink = logger.add(
        lambda m: lines.append(m.record["message"]),
        filter=lambda r: r["extra"].get("strategy") == "echo",
        format="{message}",
    )
    try:
        result = tradeloom.run_backtest(market, [("echo", strategy)], **run)
    finally:
        logger.remove(sink)
    return result, lines


def test_history_matches_across_a_split_and_in_a_streamed_run(world, tmp_path: Path) -> None:
    from sandbox_strategies import HistoryEcho

    # Raw AAPL prices with the 2005-02-28 2:1 split applied while the run plays: the split
    # rescales every earlier bar of ctx.history, and the sandbox's copy with it.
    raw = DatasetSource(
        name="us-stocks-daily", symbols=["AAPL", "IBM"], corporate_actions="adj_close"
    )
    inproc, expected = echo_lines(raw, HistoryEcho(), start="2004-06-01", end="2006-01-01")
    echo = world["children"]["echo-split"]
    boxed, _ = echo_lines(raw, echo, start="2004-06-01", end="2006-01-01")
    assert echo.fault is None, echo.fault_traceback
    assert [m for _, m in echo.logs] == expected and len(expected) == 802
    before, after = (next(m for m in expected if m.startswith(f"AAPL {n} ")) for n in (187, 188))
    assert before.startswith("AAPL 187 88.99 [[73.65, 70.24, 69.74, ")
    assert after.startswith("AAPL 188 44.86 [[35.12, 34.87, 35.3, ")  # 70.24 / 2: rescaled
    pd.testing.assert_frame_equal(boxed.orders, inproc.orders)
    pd.testing.assert_frame_equal(boxed.cash_flows, inproc.cash_flows)  # IBM's dividends

    # Three symbols at different times (B from bar 500, C every third bar), streamed in chunks
    # of 400 rows keeping 40 bars of history.
    rows = []
    for k, (symbol, every, first) in enumerate((("A", 1, 0), ("B", 1, 500), ("C", 3, 0))):
        for i in range(first, 1_500, every):
            price = 50.0 + 10 * k + ((i * (k + 3)) % 17) / 4
            rows.append((1_700_000_000_000_000_000 + i * 60_000_000_000, symbol, price,
                         price + 0.5, price - 0.5, price + 0.25, 100.0 + i))  # fmt: skip
    table = pd.DataFrame(rows, columns=["ts", "symbol", "open", "high", "low", "close", "volume"])
    path = tmp_path / "abc.parquet"
    table.sort_values(["ts", "symbol"]).to_parquet(path, row_group_size=300, index=False)
    source = tradeloom.data.ParquetSource(path=path)
    run = {"stream": "always", "chunk_rows": 400, "history_bars": 40}
    inproc, expected = echo_lines(source, HistoryEcho(n=10), **run)
    echo = world["children"]["echo-stream"]
    boxed, _ = echo_lines(source, echo, **run)
    assert echo.fault is None, echo.fault_traceback
    assert [m for _, m in echo.logs] == expected and len(expected) == 3_000
    pd.testing.assert_frame_equal(boxed.orders, inproc.orders)


# --- SB-01 ------------------------------------------------------------------------------------
def test_sb01_a_raising_strategy_faults_at_its_first_bar_and_the_run_goes_on(
    world, half_year
) -> None:
    companion = {"fast": 5, "slow": 20, "quantity": 10}
    solo = tradeloom.run_backtest(half_year, [("sma", SmaCrossover(**companion))])
    raiser = world["children"]["raiser"]
    faults: list[str] = []
    raiser.on_fault = faults.append
    pid = raiser.pid

    both = tradeloom.run_backtest(half_year, [("bad", raiser), ("sma", SmaCrossover(**companion))])

    assert raiser.state is SandboxState.FAULTED
    assert faults == [raiser.fault] == ["on_bar raised RuntimeError: boom at bar 1"]
    assert "RuntimeError: boom at bar 1" in raiser.fault_traceback
    assert raiser.pid is None and not _alive(pid)
    assert len(both.equity) == 124  # the run went to its end
    assert len(solo.trades) > 0
    pd.testing.assert_frame_equal(both.trades, solo.trades)
    pd.testing.assert_frame_equal(both.fills, solo.fills)


# --- SB-02 ------------------------------------------------------------------------------------
def test_sb02_an_infinite_loop_is_killed_at_its_deadline_and_the_kill_switch_still_works(
    world, half_year
) -> None:
    def control() -> RiskControl:
        c = RiskControl()
        c.schedule(bar_ts(half_year, 80), lambda rc: rc.kill("operator kill"))
        return c

    companion = {"fast": 5, "slow": 20, "quantity": 10}
    solo = tradeloom.run_backtest(half_year, [("sma", SmaCrossover(**companion))], risk=control())
    spinner = world["children"]["spin"]
    pid = spinner.pid
    risk = control()
    started = time.perf_counter()
    both = tradeloom.run_backtest(
        half_year, [("spin", spinner), ("sma", SmaCrossover(**companion))], risk=risk
    )
    elapsed = time.perf_counter() - started

    assert spinner.fault == (
        "on_bar did not return within its deadline of 0.5 s; the child was killed"
    )
    assert 0.5 <= elapsed < 3.0
    assert not _alive(pid)
    assert [m for _, m in spinner.logs] == ["fine at 1"] * 2 + ["fine at 2"] * 2  # IBM, MSFT
    assert risk.state() is TradingState.HALTED
    assert list(both.risk_events["kind"]).count("kill") == 1
    pd.testing.assert_frame_equal(both.trades, solo.trades)
    pd.testing.assert_frame_equal(both.orders, solo.orders)


def test_sb02_a_huge_allocation_hits_the_memory_limit(world, half_year) -> None:
    hog = world["children"]["allocate"]
    assert hog.isolation["memory_limit_mb"] == 512
    result = tradeloom.run_backtest(half_year, [("hog", hog)])

    assert hog.state is SandboxState.FAULTED
    assert hog.fault.startswith("on_bar ran out of memory (limit 512 MB): MemoryError")
    assert len(result.equity) == 124


def test_sb02_a_cpu_hog_is_killed_by_its_cpu_limit(world, half_year) -> None:
    burner = world["children"]["burn"]
    started = time.perf_counter()
    result = tradeloom.run_backtest(half_year, [("burn", burner)])
    elapsed = time.perf_counter() - started

    assert burner.fault.startswith(
        "the child exceeded its CPU time limit of 1 s (SIGXCPU) during on_bar"
    ), burner.fault
    assert elapsed < 10  # one to two seconds of CPU, far from the 30 s deadline
    assert len(result.equity) == 124


# --- SB-03 ------------------------------------------------------------------------------------
def test_sb03_the_strategy_holds_no_secret_and_reaches_no_network(world, half_year) -> None:
    snoop = world["children"]["snoop"]
    assert os.environ.get("TL_CANARY_KEY") is None  # set only while the children started
    tradeloom.run_backtest(half_year, [("snoop", snoop)])
    assert snoop.fault is None, snoop.fault_traceback
    messages = [m for _, m in snoop.logs]
    found = json.loads(messages[0])
    isolation = snoop.isolation
    not_in_force = []

    # The runner's environment: never in the child, whatever the OS.
    assert found["env_secret"] == ""
    assert CANARY not in json.dumps(found["env"]) and CANARY not in isolation["env"]
    assert set(found["env"]) <= {
        "PATH", "LANG", "TZ", "PYTHONHASHSEED", "HOME", "TMPDIR", "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_MAX_THREADS", "PYTHONDONTWRITEBYTECODE",
        "PYTHONNOUSERSITE",
    } | {k for k in found["env"] if k.startswith("LC_")}  # fmt: skip
    assert found["broker_sdk"]  # what happened is recorded (ccxt is not a dependency)

    # Files and the runner's process: out of reach once the child is nobody.
    if isolation["user"] == "nobody":
        assert found["uid"] == 65534
        assert (
            found["key_file"]
            == f"PermissionError: [Errno 13] Permission denied: '{world['key_file']}'"
        )
        assert found["parent_environ"].startswith("PermissionError")
        assert found["init_environ"].startswith("PermissionError")
        assert found["fork"].startswith("BlockingIOError")  # RLIMIT_NPROC 0
        assert messages[-1] == "leak bytes 0"
        no_canary(*messages, isolation, snoop.fault, repr(snoop))
    else:
        not_in_force.append(f"user {isolation['user']}")

    # The network: nothing to connect to, not even the runner's loopback.
    if isolation["network"].startswith("namespace"):
        assert found["socket"] == "OSError: [Errno 101] Network is unreachable"
        with pytest.raises(BlockingIOError):
            world["server"].accept()  # nothing ever connected
    else:
        not_in_force.append(f"network {isolation['network']}")
    if not_in_force:
        pytest.xfail("isolation not in force here: " + "; ".join(not_in_force))


# --- SB-04 ------------------------------------------------------------------------------------
def test_sb04_the_runner_stamps_every_order_and_the_context_reaches_no_risk_control(
    world, half_year
) -> None:
    forger = world["children"]["forge-api"]
    risk = RiskControl()
    risk.schedule(bar_ts(half_year, 2), lambda rc: rc.halt("strategy:s", "operator halt"))
    result = tradeloom.run_backtest(half_year, [("s", forger), ("victim", Victim())], risk=risk)

    assert forger.fault is None, forger.fault_traceback
    orders = result.orders.set_index("client_order_id")
    mine = orders[orders["strategy_id"] == "s"]
    assert list(mine.index[:3]) == ["s-1", "s-2", "s-3"]
    assert set(orders.index) - set(mine.index) == {"victim-1"}  # nothing else, nothing forged
    assert orders.loc["victim-1", "strategy_id"] == "victim"
    assert orders.loc["victim-1", "reason"] == "backtest ended before the order could fill"
    messages = [m for _, m in forger.logs]
    assert messages[0].startswith("placed 's-1'|'IBM'") and "|'s'|" in messages[0]
    assert "cancel refused: cancel(): no order 'victim-1'" in messages[1]
    assert "risk.resume reachable: False" in messages
    assert sum(m.startswith("after halt 's-") for m in messages) == len(mine) - 1
    assert set(mine.loc[["s-2", "s-3"], "status"]) == {"rejected"}
    assert set(mine.loc[["s-2", "s-3"], "reason"]) == {
        "risk rule trading-state: strategy:s is halted (operator halt)"
    }
    assert risk.state("strategy:s") is TradingState.HALTED


def test_sb04_forged_frames_fault_the_strategy_and_change_nothing(world, half_year) -> None:
    order_forger = world["children"]["forge-order"]
    resumer = world["children"]["forge-resume"]
    risk = RiskControl()
    risk.schedule(bar_ts(half_year, 0), lambda rc: rc.halt("strategy:s", "operator halt"))
    result = tradeloom.run_backtest(
        half_year, [("forger", order_forger), ("s", resumer), ("victim", Victim())], risk=risk
    )

    assert order_forger.fault == (
        "protocol violation during on_bar: order message: unexpected field(s) "
        "'client_order_id', 'strategy_id'"
    )
    assert resumer.fault == (
        "protocol violation during on_bar: unknown message type 'resume'; allowed: "
        + ", ".join(protocol.MESSAGES)
    )
    assert list(result.orders["client_order_id"]) == ["victim-1"]
    assert risk.state("strategy:s") is TradingState.HALTED


# --- the isolation report -----------------------------------------------------------------------
def test_isolation_report_says_what_took_effect(world) -> None:
    report = world["children"]["forge-api"].isolation
    assert report["env"].startswith("scrubbed: only HOME, ")
    assert "TL_CANARY_KEY" not in report["env"] and "BROKER_API_SECRET" not in report["env"]
    assert report["memory_limit_mb"] == 1024
    assert report["cpu_limit_s"] is None
    assert report["file_size_limit_mb"] == 16 and report["open_files_limit"] == 256
    for key in ("network", "user", "filesystem", "processes", "runner_check"):
        assert isinstance(report[key], str) and report[key]
    assert report["network"].startswith(("namespace", "unavailable: "))
    if LINUX_ROOT:
        assert report["user"] == "nobody"
        assert report["runner_check"] == "uid 65534; own network namespace"
        assert report["processes"] == "no new processes or threads (RLIMIT_NPROC 0)"
        assert report["no_new_privs"] is True
        assert report["filesystem"].startswith("private mount namespace: ")
    else:
        assert report["user"].startswith("unchanged: ")
    burner = world["children"]["burn"].isolation
    assert burner["cpu_limit_s"] == 1 and burner["cpu_used_at_start_s"] > 0


# --- start-up, protocol, environment --------------------------------------------------------------
def test_a_strategy_that_cannot_load_is_refused_at_construction(world) -> None:
    class Local(Strategy):
        pass

    with pytest.raises(ConfigError, match="define it at the top level"):
        SandboxedStrategy(Local)
    with pytest.raises(ConfigError, match=r"expected 'package\.module:ClassName'"):
        SandboxedStrategy("not a target")
    with pytest.raises(ConfigError, match="plain JSON values"):
        SandboxedStrategy("sandbox_strategies:Raiser", {"x": object()})
    with pytest.raises(RunError, match=r"could not start: AttributeError: .*'NoSuchStrategy'"):
        SandboxedStrategy("sandbox_strategies:NoSuchStrategy")
    with pytest.raises(RunError, match=r"could not start: MemoryError: memory_mb=200 leaves no"):
        SandboxedStrategy("sandbox_strategies:Raiser", memory_mb=200)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"\xff", "not a JSON message"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b'{"t": "done", "t": "done"}', "repeats a key"),
        (b'{"t": "resume"}', "unknown message type 'resume'"),
        (b'{"t": "cancel"}', "cancel message: missing field(s) id"),
        (b'{"t": "cancel", "id": "s-1", "strategy_id": "x"}', "unexpected field(s) 'strategy_id'"),
        (b'{"t": "cancel", "id": 7}', "cancel message: invalid id (7)"),
        (b'{"t": "room", "symbol": "X", "side": "short"}', "invalid side ('short')"),
        (b'{"t": "log", "level": ["INFO"], "message": "x"}', "log message: invalid level (list)"),
        (
            b'{"t": "order", "symbol": "X", "quantity": true, "limit": null, "stop": null,'
            b' "trail_amount": null, "trail_percent": null, "tif": "gtc", "at": null}',
            "order message: invalid quantity (True)",
        ),
    ],
)
def test_the_runner_parses_child_messages_strictly(payload: bytes, error: str) -> None:
    with pytest.raises(ProtocolError, match=error.replace("(", r"\(").replace(")", r"\)")):
        protocol.parse(payload)


def test_frames_longer_than_the_limit_are_refused_before_they_are_read() -> None:
    reader = protocol.FrameReader(protocol.MAX_CHILD_FRAME)
    reader.feed(protocol.HEADER.pack(protocol.MAX_CHILD_FRAME + 1))
    with pytest.raises(ProtocolError, match="frame of 1,048,577 bytes; the limit is 1,048,576"):
        reader.next()
    good = protocol.FrameReader(protocol.MAX_CHILD_FRAME)
    frame = protocol.encode("order", symbol="X", quantity=-2.5, limit=10, stop=None,
                            trail_amount=None, trail_percent=None, tif="gtc", at="close")  # fmt: skip
    good.feed(frame[:5])
    assert good.next() is None
    good.feed(frame[5:])
    assert protocol.parse(good.next()) == {
        "t": "order", "symbol": "X", "quantity": -2.5, "limit": 10, "stop": None,
        "trail_amount": None, "trail_percent": None, "tif": "gtc", "at": "close",
    }  # fmt: skip


def test_the_child_environment_is_an_allowlist(tmp_path: Path) -> None:
    parent = {
        "PATH": "/usr/bin", "LANG": "C.UTF-8", "LC_ALL": "C", "TZ": "UTC", "HOME": "/root",
        "TL_CANARY_KEY": CANARY, "AWS_SECRET_ACCESS_KEY": CANARY, "PYTHONPATH": "/evil",
        "LD_PRELOAD": "/evil.so", "TRADELOOM_STORE": "postgresql://u:pw@db/x",
    }  # fmt: skip
    env = child_environment(str(tmp_path), parent)
    assert env == {
        "PATH": "/usr/bin", "LANG": "C.UTF-8", "LC_ALL": "C", "TZ": "UTC",
        "HOME": str(tmp_path), "TMPDIR": str(tmp_path), "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMEXPR_MAX_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
    }  # fmt: skip


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
