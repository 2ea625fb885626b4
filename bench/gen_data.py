# Copied unchanged (apart from this header) from the project's shared benchmark definition
# (shared/bench/gen_data.py, beside BENCHMARK.md) so that the suite never reads outside the repo.
# Keep it identical: every figure in docs/benchmarks.md was measured on the bars it writes.
"""Deterministic synthetic 1-minute OHLCV bars for one instrument.

Geometric random walk, start price 100, prices rounded to a 0.00001 tick
(5 decimals, so every engine, including fixed-point ones, sees the same prices).
open != previous close (small gap), so "fill at next open" and "fill at this
close" give different results and fill conventions can be told apart.

Usage: python gen_data.py [--out DIR] [--seed 42] [--sizes 100000 1000000]
Writes DIR/bars_<n>.parquet with columns ts (int64 ns, bar OPEN time, UTC),
open, high, low, close (float64), volume (float64, whole numbers, > 0).
"""

import argparse
import os
import tempfile

import numpy as np
import pandas as pd

TICK_DECIMALS = 5
SIGMA = 0.0005  # per-bar log-return std of the close
GAP_SIGMA = 0.0001  # open vs previous close
RANGE_SIGMA = 0.00025  # extra excursion of high/low beyond max/min(open, close)
START_NS = 1_577_836_800_000_000_000  # 2020-01-01T00:00:00Z


def make_bars(n: int, seed: int = 42) -> pd.DataFrame:
    # one generator per stream, so a shorter series is a prefix of a longer one
    rng = [np.random.default_rng([seed, k]) for k in range(5)]
    ret = rng[0].normal(0.0, SIGMA, n)
    gap = rng[1].normal(0.0, GAP_SIGMA, n)
    gap[0] = 0.0
    # log price path: open_i = close_{i-1} * exp(gap_i); close_i = open_i * exp(ret_i)
    log_open = np.log(100.0) + np.cumsum(gap) + np.concatenate(([0.0], np.cumsum(ret)[:-1]))
    log_close = log_open + ret
    o = np.round(np.exp(log_open), TICK_DECIMALS)
    c = np.round(np.exp(log_close), TICK_DECIMALS)
    up = np.abs(rng[2].normal(0.0, RANGE_SIGMA, n))
    dn = np.abs(rng[3].normal(0.0, RANGE_SIGMA, n))
    h = np.round(np.maximum(o, c) * np.exp(up), TICK_DECIMALS)
    lo = np.round(np.minimum(o, c) * np.exp(-dn), TICK_DECIMALS)
    vol = np.floor(rng[4].lognormal(7.0, 0.5, n)) + 1.0
    ts = START_NS + np.arange(n, dtype=np.int64) * 60_000_000_000
    df = pd.DataFrame({"ts": ts, "open": o, "high": h, "low": lo, "close": c, "volume": vol})
    assert (df.high >= df[["open", "close"]].max(axis=1)).all()
    assert (df.low <= df[["open", "close"]].min(axis=1)).all()
    assert (df.low > 0).all() and (df.volume > 0).all()
    return df


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "peers", "data"))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for n in a.sizes:
        df = make_bars(n, a.seed)
        path = os.path.join(a.out, f"bars_{n}.parquet")
        df.to_parquet(path, index=False)
        print(
            f"{path}: {n} bars, close min {df.close.min():.5f} max {df.close.max():.5f} "
            f"last {df.close.iloc[-1]:.5f}"
        )


if __name__ == "__main__":
    main()
