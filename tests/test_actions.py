"""Corporate actions as data: read off adjusted closes, loaded from tables, split factors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradeloom.data import DatasetSource
from tradeloom.data.actions import (
    CorporateAction,
    actions_from_adjusted,
    dataset_actions,
    load_actions_table,
    split_factor_series,
)
from tradeloom.errors import DataError

# --- helpers ----------------------------------------------------------------------------------


def ns(day: str) -> int:
    """Nanoseconds of midnight UTC of ``day``: the bundled daily bars' timestamps."""
    return pd.Timestamp(day, tz="UTC").value


def frame(close: np.ndarray | list[float], adj: np.ndarray | list[float]) -> pd.DataFrame:
    index = pd.date_range("2021-01-04", periods=len(close), freq="D", tz="UTC", name="ts")
    return pd.DataFrame(
        {"close": np.asarray(close, float), "adj_close": np.asarray(adj, float)}, index=index
    )


def vendor_adjust(
    close: np.ndarray, events: dict[int, tuple[str, float]], basis: str = "ex_close"
) -> np.ndarray:
    """The adjusted close a vendor prints: every bar before an ex-date times that action's
    multiplier. ``events``: bar -> ("split", k) or ("dividend", D per share going in)."""
    factor = np.ones(len(close))
    for t, (kind, value) in events.items():
        if kind == "split":
            r = 1.0 / value
        elif basis == "ex_close":
            r = close[t] / (close[t] + value)
        else:
            r = 1.0 - value / close[t - 1]
        factor[:t] *= r
    return close * factor


def walk(n: int, start: float, seed: int, decimals: int = 2) -> np.ndarray:
    """A random walk of closes printed with ``decimals`` decimals."""
    rng = np.random.default_rng(seed)
    return np.round(start * np.exp(np.cumsum(rng.normal(0, 0.02, n))), decimals)


def loaded(symbol: str, start: str | None = None, end: str | None = None) -> pd.DataFrame:
    """Raw closes and adjusted closes of a bundled us-stocks-daily symbol, via the public
    source (``adjusted = true`` rescales the close to the adjusted close)."""
    raw = DatasetSource(name="us-stocks-daily", symbols=[symbol]).load(start, end)
    adj = DatasetSource(name="us-stocks-daily", symbols=[symbol], adjusted=True).load(start, end)
    return pd.DataFrame(
        {"close": raw.frames[symbol]["close"], "adj_close": adj.frames[symbol]["close"]}
    )


def days(actions: list[CorporateAction], kind: str) -> list[str]:
    return [str(a.ex_time.date()) for a in actions if a.kind == kind]


# --- the bundled data -------------------------------------------------------------------------


def test_aapl_two_splits_of_two_for_one() -> None:
    actions = dataset_actions("us-stocks-daily", ["AAPL"])
    splits = [a for a in actions if a.kind == "split"]
    assert [(a.ex_ts, a.ratio) for a in splits] == [
        (ns("2000-06-21"), 2.0),
        (ns("2005-02-28"), 2.0),
    ]
    assert {a.symbol for a in actions} == {"AAPL"}


def test_aapl_dividends_are_the_declared_265() -> None:
    actions = dataset_actions("us-stocks-daily", ["AAPL"])
    dividends = [a for a in actions if a.kind == "dividend"]
    assert days(actions, "dividend") == ["2012-08-09", "2012-11-07", "2013-02-07"]
    assert [a.amount for a in dividends] == pytest.approx([2.65, 2.65, 2.65], abs=1e-8)


def test_dividend_convention_checked_against_the_data() -> None:
    """Quandl's step on AAPL's first ex-date is c_t / (c_t + D) with the ex-date's close 620.73
    and D = 2.65, not 1 - D / c_{t-1} with the previous close 619.86."""
    bars = loaded("AAPL", "2012-08-08", "2012-08-09")
    assert list(bars["close"]) == [619.86, 620.73]
    f = (bars["adj_close"] / bars["close"]).to_numpy()
    r = f[0] / f[1]
    assert r == pytest.approx(620.73 / (620.73 + 2.65), rel=1e-12)
    assert abs(r - (1 - 2.65 / 619.86)) > 1e-5
    # the other convention reads the same steps as three different amounts
    prev = actions_from_adjusted(loaded("AAPL"), "AAPL", dividend_basis="prev_close")
    amounts = [a.amount for a in prev if a.kind == "dividend"]
    assert amounts == pytest.approx([619.86 * 2.65 / 623.38, 2.754920, 2.573911], abs=1e-6)


def test_public_frames_give_the_same_actions_as_the_dataset() -> None:
    for symbol in ("AAPL", "MSFT"):
        from_frames = actions_from_adjusted(loaded(symbol), symbol)
        from_dataset = dataset_actions("us-stocks-daily", [symbol])
        assert [(a.ex_ts, a.kind, a.ratio) for a in from_frames] == [
            (a.ex_ts, a.kind, a.ratio) for a in from_dataset
        ]
        assert [a.amount for a in from_frames] == pytest.approx(
            [a.amount for a in from_dataset], abs=1e-9
        )


def test_ibm_52_quarterly_dividends_in_whole_cents_and_no_split() -> None:
    actions = dataset_actions("us-stocks-daily", ["IBM"])
    assert all(a.kind == "dividend" for a in actions)
    assert len(actions) == 52
    amounts = np.array([a.amount for a in actions])
    assert np.max(np.abs(amounts * 100 - np.round(amounts * 100))) < 1e-6
    assert (actions[0].ex_ts, actions[-1].ex_ts) == (ns("2000-05-08"), ns("2013-02-06"))
    # four payments at each rate, raised thirteen times from $0.13 to $0.85
    counts = Counter(round(a, 2) for a in amounts)
    assert counts == {
        rate: 4
        for rate in (0.13, 0.14, 0.15, 0.16, 0.18, 0.20, 0.30, 0.40, 0.50, 0.55, 0.65, 0.75, 0.85)
    }
    gaps = np.diff([a.ex_ts for a in actions]) / 86_400e9
    assert (gaps.min(), gaps.max()) == (87, 94)  # quarterly


def test_msft_its_real_split_its_dividends_and_the_2004_special() -> None:
    actions = dataset_actions("us-stocks-daily", ["MSFT"])
    assert [(a.ex_ts, a.ratio) for a in actions if a.kind == "split"] == [(ns("2003-02-18"), 2.0)]
    dividends = {str(a.ex_time.date()): a.amount for a in actions if a.kind == "dividend"}
    assert len(dividends) == 37
    assert dividends["2003-02-19"] == pytest.approx(0.08, abs=1e-8)  # first ever, after the split
    assert dividends["2004-11-15"] == pytest.approx(3.08, abs=1e-8)  # $3 special + $0.08
    assert dividends["2013-02-19"] == pytest.approx(0.23, abs=1e-8)
    assert sum(dividends.values()) == pytest.approx(7.77, abs=1e-6)


def test_no_actions_where_adjusted_equals_close() -> None:
    assert dataset_actions("us-stocks-daily", ["GOOG", "FB"]) == []
    assert dataset_actions("sp500-daily") == []
    assert dataset_actions("nasdaq-daily") == []
    with pytest.raises(DataError, match="no adjusted close"):
        dataset_actions("btcusd-1h")
    with pytest.raises(DataError, match="unknown dataset"):
        dataset_actions("nope")


def test_the_noise_floor_is_far_from_both_noise_and_dividends() -> None:
    """Between ex-dates the factor is constant to 1e-13; the smallest real step is 1.09e-3."""
    quiet, events = [], []
    for symbol in ("AAPL", "IBM", "MSFT"):
        bars = loaded(symbol)
        f = (bars["adj_close"] / bars["close"]).to_numpy()
        step = np.abs(np.log(f[:-1] / f[1:]))
        actions = dataset_actions("us-stocks-daily", [symbol])
        ex = np.isin(bars.index.asi8[1:], [a.ex_ts for a in actions])
        quiet.append(step[~ex].max())
        events.append(step[ex].min())
    assert max(quiet) < 1e-12
    assert min(events) == pytest.approx(1.093e-3, rel=1e-3)


# --- the engine's acceptance property, in data terms ------------------------------------------


def test_buy_and_hold_on_raw_closes_with_split_factors_matches_adj_close() -> None:
    bars = loaded("AAPL", "2000-03-01", "2012-06-29")  # no dividend before 2012-08-09
    close, adj, ts = bars["close"].to_numpy(), bars["adj_close"].to_numpy(), bars.index.asi8
    factor = split_factor_series(dataset_actions("us-stocks-daily", ["AAPL"]), "AAPL", ts)
    assert (close[0], close[-1], factor[0], factor[-1]) == (130.31, 584.0, 1.0, 4.0)

    with_splits = close[-1] * factor[-1] / (close[0] * factor[0]) - 1
    from_adjusted = adj[-1] / adj[0] - 1
    naive = close[-1] / close[0] - 1
    assert with_splits == pytest.approx(from_adjusted, rel=1e-6)
    assert with_splits == pytest.approx(16.9265, abs=1e-4)  # +1,693 %
    assert naive == pytest.approx(3.4816, abs=1e-4)  # +348 % without split handling
    assert (1 + with_splits) / (1 + naive) == pytest.approx(4.0, rel=1e-12)
    assert with_splits / naive > 4

    # bar by bar too: the position's value tracks the adjusted close, and a split is no crash
    value = close * factor / factor[0]
    np.testing.assert_allclose(value / close[0], adj / adj[0], rtol=1e-12)
    daily = pd.Series(value[1:] / value[:-1] - 1, index=bars.index[1:])
    raw_daily = pd.Series(close[1:] / close[:-1] - 1, index=bars.index[1:])
    for day, raw_move, held in (("2000-06-21", -0.4506, 0.0988), ("2005-02-28", -0.4959, 0.0082)):
        assert raw_daily[day] == pytest.approx(raw_move, abs=1e-4)
        assert daily[day] == pytest.approx(held, abs=1e-4)


@pytest.mark.parametrize("symbol", ["AAPL", "IBM", "MSFT"])
def test_dividends_reinvested_at_the_ex_close_reproduce_adj_close(symbol: str) -> None:
    """With "ex_close" amounts, splitting the position and reinvesting each dividend at the
    ex-date's close is exactly the adjusted close's total return; paying cash is not."""
    bars = loaded(symbol)
    close, adj = bars["close"].to_numpy(), bars["adj_close"].to_numpy()
    actions = dataset_actions("us-stocks-daily", [symbol])
    at = {ts: i for i, ts in enumerate(bars.index.asi8)}
    shares, cash_shares, cash = 1.0, 1.0, 0.0
    for action in actions:  # in order: a dividend before a split of the same bar
        t = at[action.ex_ts]
        if action.kind == "split":
            shares *= action.ratio
            cash_shares *= action.ratio
        else:
            shares += shares * action.amount / close[t]
            cash += cash_shares * action.amount
    total = shares * close[-1] / close[0] - 1
    assert total == pytest.approx(adj[-1] / adj[0] - 1, rel=1e-9)
    with_cash = (cash_shares * close[-1] + cash) / close[0] - 1
    assert abs(with_cash - total) > 1e-3


# --- hand-made frames -------------------------------------------------------------------------


def test_reverse_split_one_for_ten() -> None:
    close = np.array([1.02, 0.98, 1.01, 10.3, 10.1, 9.9])
    actions = actions_from_adjusted(frame(close, vendor_adjust(close, {3: ("split", 0.1)})), "X")
    assert actions == [CorporateAction("X", ns("2021-01-07"), "split", ratio=0.1)]


def test_three_for_two_split() -> None:
    close = np.array([60.0, 61.5, 41.2, 40.9])
    actions = actions_from_adjusted(frame(close, vendor_adjust(close, {2: ("split", 1.5)})), "X")
    assert [(a.ex_ts, a.kind, a.ratio) for a in actions] == [(ns("2021-01-06"), "split", 1.5)]


@pytest.mark.parametrize(
    "ratio", [2.0, 3.0, 7.0, 20.0, 50.0, 1.5, 4 / 3, 5 / 4, 7 / 4, 2 / 3, 1 / 3, 0.1, 1 / 50]
)
def test_split_ratios_snap_exactly(ratio: float) -> None:
    close = np.array([100.0, 101.0, 101.0 / ratio, 100.0 / ratio])
    adj = vendor_adjust(close, {2: ("split", ratio)}) * (1 + 1e-12)  # printed noise
    (action,) = actions_from_adjusted(frame(close, adj), "X")
    assert action.kind == "split" and action.ratio == ratio


def test_special_dividend_and_a_regular_one() -> None:
    close = np.array([50.0, 50.5, 45.6, 45.9, 46.3, 46.0])
    events = {2: ("dividend", 5.0), 4: ("dividend", 0.25)}  # a 10 % special, then 0.5 %
    for basis in ("ex_close", "prev_close"):
        adj = vendor_adjust(close, events, basis)
        actions = actions_from_adjusted(frame(close, adj), "X", dividend_basis=basis)
        assert [(a.ex_ts, a.kind) for a in actions] == [
            (ns("2021-01-06"), "dividend"),
            (ns("2021-01-08"), "dividend"),
        ]
        assert [a.amount for a in actions] == pytest.approx([5.0, 0.25], abs=1e-10)


def test_split_and_dividend_on_the_same_bar() -> None:
    """A 2:1 split with $0.25 per new share = $0.50 per share held going in; the dividend
    comes first so the engine pays it on the pre-split quantity."""
    close = np.array([100.0, 101.0, 50.0, 50.4])
    f_after = 1.0
    f_before = f_after * (close[2] / (close[2] + 0.25)) / 2.0
    adj = close * np.array([f_before, f_before, f_after, f_after])
    actions = actions_from_adjusted(frame(close, adj), "X")
    assert [(a.kind, a.ex_ts) for a in actions] == [
        ("dividend", ns("2021-01-06")),
        ("split", ns("2021-01-06")),
    ]
    assert actions[0].amount == pytest.approx(0.50, abs=1e-12)
    assert actions[1].ratio == 2.0


def test_rounding_noise_makes_no_phantom_dividends() -> None:
    """Adjusted closes printed with 2 decimals at $2-$8: steps of ~1e-3 from rounding alone."""
    close = walk(500, 5.0, seed=1)
    factor = 0.83  # a constant adjustment from some later action
    adj = np.round(close * factor, 2)
    steps = np.abs(np.diff(np.log(adj / close)))
    assert steps.max() > 1e-3  # as large as a real quarterly dividend
    assert actions_from_adjusted(frame(close, adj), "X") == []
    # ignoring the printed precision turns the noise into actions (and raises on the first
    # step that goes the wrong way for a dividend)
    with pytest.raises(DataError, match="no cash dividend"):
        actions_from_adjusted(frame(close, adj), "X", tolerance=1e-9)


def test_rounding_noise_and_a_real_dividend() -> None:
    close = walk(400, 30.0, seed=2)
    t = 250
    amount = 0.60  # about 2 %
    adj2 = np.round(vendor_adjust(close, {t: ("dividend", amount)}) * 0.9, 2)
    (action,) = actions_from_adjusted(frame(close, adj2), "X")
    assert action.ex_ts == frame(close, adj2).index[t].value
    # the amount is as good as the printing: ±(0.005/a_{t-1} + 0.005/a_t) of the price
    assert action.amount == pytest.approx(
        amount, abs=close[t] * (0.005 / adj2[t - 1] + 0.005 / adj2[t])
    )
    adj4 = np.round(vendor_adjust(close, {t: ("dividend", 0.05)}) * 0.9, 4)  # 0.2 %, 4 decimals
    (small,) = actions_from_adjusted(frame(close, adj4), "X")
    assert small.amount == pytest.approx(0.05, abs=2e-3)


def test_a_six_for_five_split_needs_a_lower_threshold() -> None:
    close = np.array([60.12, 60.3, 50.25, 50.1])
    adj = vendor_adjust(close, {2: ("split", 1.2)}) * 0.987654321
    (as_dividend,) = actions_from_adjusted(frame(close, adj), "X")
    assert as_dividend.kind == "dividend"
    assert as_dividend.amount == pytest.approx(50.25 * 0.2)  # c_t (1/r - 1), r = 1/1.2
    (split,) = actions_from_adjusted(frame(close, adj), "X", split_threshold=0.1)
    assert split.kind == "split" and split.ratio == 1.2


def test_steps_that_are_no_action_are_errors() -> None:
    close = np.array([100.0, 100.0, 100.0 / 2.3, 43.0])
    with pytest.raises(DataError, match=r"X: .* 2\.3 new shares per old one, which is no simple"):
        actions_from_adjusted(frame(close, vendor_adjust(close, {2: ("split", 2.3)})), "X")
    close = np.array([100.25, 100.5, 100.75, 101.0])
    adj = close * np.array([1.01, 1.01, 1.0, 1.0]) * 0.987654321  # earlier prices raised 1 %
    with pytest.raises(DataError, match=r"2021-01-06.*no cash dividend"):
        actions_from_adjusted(frame(close, adj), "X")


def test_frames_that_cannot_be_read() -> None:
    good = frame([10.0, 11.0], [5.0, 5.5])
    with pytest.raises(DataError, match="no adj_close column"):
        actions_from_adjusted(good.drop(columns="adj_close"), "X")
    with pytest.raises(DataError, match=r"adj_close is nan at 2021-01-05"):
        actions_from_adjusted(frame([10.0, 11.0], [5.0, np.nan]), "X")
    with pytest.raises(DataError, match=r"close is 0\.0"):
        actions_from_adjusted(frame([0.0, 11.0], [5.0, 5.5]), "X")
    with pytest.raises(DataError, match="increasing time order"):
        actions_from_adjusted(good.iloc[::-1], "X")
    with pytest.raises(DataError, match="DatetimeIndex"):
        actions_from_adjusted(good.reset_index(drop=True), "X")
    assert actions_from_adjusted(good.iloc[:1], "X") == []
    naive = good.tz_localize(None)
    naive.iloc[0, 1] = 2.5  # a 2:1 split on the second bar, times taken as UTC
    assert actions_from_adjusted(naive, "X") == [
        CorporateAction("X", ns("2021-01-05"), "split", ratio=2.0)
    ]


def test_corporate_action_checks_itself() -> None:
    action = CorporateAction("AAPL", ns("2012-08-09"), "dividend", amount=2.65)
    assert action.ex_time == pd.Timestamp("2012-08-09", tz="UTC")
    with pytest.raises(ValueError, match="positive ratio"):
        CorporateAction("X", 0, "split", ratio=0.0)
    with pytest.raises(ValueError, match="positive ratio"):
        CorporateAction("X", 0, "split")
    with pytest.raises(ValueError, match="amount >= 0"):
        CorporateAction("X", 0, "dividend", amount=-1.0)
    with pytest.raises(ValueError, match="kind"):
        CorporateAction("X", 0, "merger")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="symbol"):
        CorporateAction("", 0, "dividend", amount=1.0)


# --- actions tables ---------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "actions.csv"
    path.write_text(text.lstrip())
    return path


def test_load_actions_table(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
symbol,date,split_ratio,dividend
AAPL,2005-02-28,2:1,
AAPL,2000-06-21,2,
AAPL,2012-08-09,,2.65
MSFT,2003-02-18,2/1,0.08
XYZ,2020-01-02,1:10,
ABC,2020-01-03,1.5,0
IBM,2012-08-08,1,0.85
QQQ,2020-01-06,1,0

""",
    )
    actions = load_actions_table(path)
    assert actions == [
        CorporateAction("AAPL", ns("2000-06-21"), "split", ratio=2.0),
        CorporateAction("MSFT", ns("2003-02-18"), "dividend", amount=0.08),
        CorporateAction("MSFT", ns("2003-02-18"), "split", ratio=2.0),
        CorporateAction("AAPL", ns("2005-02-28"), "split", ratio=2.0),
        CorporateAction("IBM", ns("2012-08-08"), "dividend", amount=0.85),
        CorporateAction("AAPL", ns("2012-08-09"), "dividend", amount=2.65),
        CorporateAction("XYZ", ns("2020-01-02"), "split", ratio=0.1),
        CorporateAction("ABC", ns("2020-01-03"), "split", ratio=1.5),
    ]


def test_actions_table_vendor_headers_and_time_zone(tmp_path: Path) -> None:
    path = write(tmp_path, "Ticker,Ex-Date,Split Ratio\nAAPL,2014-06-09,7\n")
    (action,) = load_actions_table(path, timezone="America/New_York")
    assert action.ex_time == pd.Timestamp("2014-06-09 04:00", tz="UTC")
    assert action.ratio == 7.0
    only_dividends = write(tmp_path, "symbol,date,dividend\nIBM,2013-02-06,0.85\n")
    assert load_actions_table(only_dividends)[0].amount == 0.85
    assert load_actions_table(write(tmp_path, "symbol,date,dividend\n")) == []


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (",2020-01-02,2,", "line 3, column symbol: empty"),
        ("X,,2,", "line 3, column date: empty"),
        ("X,02/30/2020,2,", "line 3, column date: '02/30/2020' is not a date"),
        ("X,yesterday,2,", "line 3, column date: 'yesterday' is not a date"),
        ("X,2020-01-02,0,", "line 3, column split_ratio: '0' is not positive"),
        ("X,2020-01-02,-2,", "line 3, column split_ratio: '-2' is not positive"),
        ("X,2020-01-02,1:0,", "line 3, column split_ratio: '1:0' is not a ratio"),
        ("X,2020-01-02,two,", "line 3, column split_ratio: 'two' is not a number"),
        ("X,2020-01-02,,-0.5", "line 3, column dividend: '-0.5' is negative"),
        ("X,2020-01-02,,abc", "line 3, column dividend: 'abc' is not a number"),
        ("X,2020-01-02,,inf", "line 3, column dividend: 'inf' is not a finite number"),
        ("X,2020-01-01,3,", "line 3: a second split of X on 2020-01-01 (first on line 2)"),
    ],
)
def test_actions_table_bad_rows(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path, f"symbol,date,split_ratio,dividend\nX,2020-01-01,2,\n{row}\n")
    with pytest.raises(DataError, match="1 bad row in the actions table") as info:
        load_actions_table(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_actions_table_lists_every_bad_row(tmp_path: Path) -> None:
    rows = "\n".join(f"X{i},2020-01-{i + 1:02d},-1," for i in range(12))
    path = write(tmp_path, f"symbol,date,split_ratio,dividend\n{rows}\n")
    with pytest.raises(DataError, match="12 bad rows") as info:
        load_actions_table(path)
    assert "line 2," in str(info.value) and "line 11," in str(info.value)
    assert "line 12," not in str(info.value) and "and 2 more" in str(info.value)


def test_actions_table_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"needs column.*split_ratio or dividend"):
        load_actions_table(write(tmp_path, "symbol,date,price\nX,2020-01-01,3\n"))
    with pytest.raises(DataError, match=r"needs column.*date"):
        load_actions_table(write(tmp_path, "symbol,when,dividend\nX,2020-01-01,3\n"))
    with pytest.raises(DataError, match="two columns could be split_ratio"):
        load_actions_table(write(tmp_path, "symbol,date,split,split_ratio\nX,2020-01-01,2,2\n"))
    with pytest.raises(DataError, match="no such actions file"):
        load_actions_table(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="unknown time zone"):
        load_actions_table(write(tmp_path, "symbol,date,dividend\n"), timezone="Mars/Base")


# --- split factors ----------------------------------------------------------------------------


def test_split_factor_series_for_aapl() -> None:
    actions = dataset_actions("us-stocks-daily", ["AAPL"])
    ts = np.array(
        [ns(d) for d in ("2000-03-01", "2000-06-20", "2000-06-21", "2005-02-25", "2005-02-28")]
        + [ns("2013-03-01"), ns("2000-06-21") - 1],
        dtype=np.int64,
    )
    factor = split_factor_series(actions, "AAPL", ts)
    assert factor.dtype == np.float64
    assert factor.tolist() == [1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 1.0]
    # 2000-03-01's close in the share units of 2005-03-01: $130.31 × C(s) / C(t)
    assert 130.31 * factor[0] / factor[4] == pytest.approx(32.5775)
    dates = ts.astype("datetime64[ns]")
    assert split_factor_series(actions, "AAPL", dates).tolist() == factor.tolist()
    assert split_factor_series(actions, "IBM", ts).tolist() == [1.0] * 7


def test_split_factor_series_products_and_dividends() -> None:
    actions = [
        CorporateAction("X", 100, "split", ratio=3.0),
        CorporateAction("X", 50, "dividend", amount=1.0),
        CorporateAction("X", 200, "split", ratio=0.1),
        CorporateAction("Y", 150, "split", ratio=2.0),
    ]
    ts = np.array([0, 99, 100, 150, 199, 200, 10**18], dtype=np.int64)
    assert split_factor_series(actions, "X", ts) == pytest.approx(
        [1.0, 1.0, 3.0, 3.0, 3.0, 0.3, 0.3]
    )
    assert split_factor_series([], "X", ts).tolist() == [1.0] * 7
    with pytest.raises(TypeError, match="int64 nanoseconds"):
        split_factor_series(actions, "X", np.array([1.5]))
