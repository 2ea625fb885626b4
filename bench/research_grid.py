"""A 1,000-combination research grid on 1M bars: tradeloom's vector engine beside vectorbt.

    uv run python bench/research_grid.py                   # tradeloom ×3, vectorbt ×1 (~3.5 min)
    uv run python bench/research_grid.py --skip-peers      # tradeloom alone (~1 min)
    uv run python bench/research_grid.py --repeat 3 --chunk 100

The grid: the benchmark's SMA crossover (BENCHMARK.md's rules: long only, 10 units, fills at the
next bar's open, no fees) for fast 5..100 step 5 × slow 110..600 step 10, 20 × 50 = 1,000
combinations, every one valid (fast < slow), on ``bench/data/bars_1000000.parquet``.

* tradeloom (``bench/engines/tradeloom_grid.py``, the workspace's Python): one
  ``tradeloom.vector.sweep(market, SmaCrossover, grid)`` call, in parallel on every core.
* vectorbt (``bench/engines/vectorbt_grid.py``, ``bench/.venv-peers``): ``from_signals`` over
  ``--chunk`` combinations at a time (1,000 columns of 1M bars do not fit in memory at once),
  the chunks' times summed.

Each engine runs in its own process under ``bench/run.py``'s launcher, so its peak RSS is its
own. "first call" is the process' first call, the whole grid on the first ``--warmup-bars``
bars: it pays for numba (compiling, or loading cached kernels, and starting threads), so the
"warm" calls on every bar exclude it; warm is the median of ``--repeat`` passes over the whole
grid (default 3 for tradeloom, 1 for vectorbt, which takes minutes). Throughput is
combinations × bars / warm seconds.

Correctness: every combination's closed round trips and final PnL (final equity − initial cash,
an open position marked at the last close: what ``sweep`` returns) are checked against the exact
integer-tick answer (``bench/engines/reference.py``'s arithmetic), for both engines, and the two
engines against each other; ``--check`` combinations (the corners and points spread over the
grid) are tabulated, and ``tradeloom.vector.run_signals`` (the single-run API) is checked on two
of them. Where the two moving averages tie exactly on some bar, float rounding decides the
crossing, and an engine may differ from the exact answer there: that is reported, not failed.
Raw figures go to ``bench/results/grid-<date>.json``. The exit status is 1 when a run fails or
an engine differs from the exact answer at a combination without an exact tie.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH / "engines")]
import run as bench_run  # noqa: E402  (bench/run.py: the launcher, data and peers' environment)
from _common import QUANTITY  # noqa: E402  (bench/engines/_common.py)
from reference import TICKS_PER_UNIT, exact  # noqa: E402  (bench/engines/reference.py)

ENGINES_DIR = BENCH / "engines"
BARS = 1_000_000
DEFAULT_DATA = bench_run.DATA_DIR / f"bars_{BARS}.parquet"
GRID_FAST = tuple(range(5, 101, 5))
GRID_SLOW = tuple(range(110, 601, 10))
GRID = [(fast, slow) for fast in GRID_FAST for slow in GRID_SLOW]
CHECKS = ("5/110", "5/600", "100/110", "100/600", "10/300", "25/200", "40/520", "50/350",
          "60/250", "75/450", "85/580", "95/150")  # fmt: skip
"""The corners, then points spread over the grid."""
SINGLE = ("5/110", "100/600")
"""Checked through ``tradeloom.vector.run_signals`` too."""
TOLERANCE = 1e-6
"""PnL agreement: float rounding of a million-unit cash balance over ~10⁴ trades is ~10⁻⁸."""
BUSY_WARNING = 0.25
"""Cores' worth of CPU used by other processes during a run above which its time is suspect."""


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=170)
    started = datetime.now(UTC)  # noqa: TID251 - when the benchmark ran, for its record
    if args.data is None:
        bench_run.DATA_DIR.mkdir(parents=True, exist_ok=True)
        bench_run._ensure_data(console, BARS)
        args.data = DEFAULT_DATA
    if not args.data.exists():
        console.print(f"[red]{args.data} does not exist (see bench/gen_data.py)[/]")
        return 2
    repeat_tl = args.repeat or 3
    repeat_vbt = args.repeat or 1
    checks = [tuple(int(x) for x in c.split("/")) for c in args.check]

    runs: dict[str, dict[str, Any]] = {}
    cmd = ["--repeat", str(repeat_tl), "--warmup-bars", str(args.warmup_bars)]
    cmd += ["--single", *SINGLE]
    runs["tradeloom"] = _run(
        console, "tradeloom", Path(sys.executable), "tradeloom_grid.py", args.data, cmd
    )
    peer_status = "skipped (--skip-peers)"
    if not args.skip_peers:
        peers = bench_run._ensure_peers(console, reinstall=False)
        if peers.python is None or "vectorbt" in peers.failed:
            peer_status = peers.failed.get("vectorbt", "the peers environment is missing")
        else:
            cmd = ["--repeat", str(repeat_vbt), "--chunk", str(args.chunk)]
            cmd += ["--warmup-bars", str(args.warmup_bars)]
            runs["vectorbt"] = _run(
                console, "vectorbt", peers.python, "vectorbt_grid.py", args.data, cmd
            )
            peer_status = "ran"

    _print_table(console, runs, peer_status)
    checked = _check(console, args.data, runs, checks)
    record = {
        "started_utc": started.isoformat(timespec="seconds"),
        "command": ["bench/research_grid.py", *(argv if argv is not None else sys.argv[1:])],
        "data": str(args.data),
        "machine": bench_run._machine(),
        "git": bench_run._git(),
        "runs": runs,
        "checks": checked,
    }
    bench_run.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = _free_path(bench_run.RESULTS_DIR / f"grid-{started:%Y-%m-%d}.json")
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    console.print(f"Raw measurements: [bold]{path.relative_to(BENCH.parent)}[/]")
    failed = any(not r["ok"] for r in runs.values())
    return 1 if failed or not checked["ok"] else 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/research_grid.py", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"bars parquet (default: {DEFAULT_DATA.relative_to(BENCH.parent)}, generated if "
        "missing)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="warm passes over the grid per engine, the median reported (default: 3 for "
        "tradeloom, 1 for vectorbt)",
    )
    parser.add_argument("--skip-peers", action="store_true", help="run tradeloom only")
    parser.add_argument(
        "--chunk",
        type=int,
        default=100,
        help="vectorbt: combinations per from_signals call (default 100: peak RSS ≈ 3 GiB; 200 "
        "was no faster at 7.3 GiB, 50 slower)",
    )
    parser.add_argument(
        "--warmup-bars",
        type=int,
        default=20_000,
        help="bars of the first (warm-up) call on the grid (default 20000)",
    )
    parser.add_argument(
        "--check",
        nargs="+",
        default=list(CHECKS),
        metavar="F/S",
        help="combinations checked against the exact reference (default: the corners and 8 more)",
    )
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.chunk < 1:
        parser.error("--chunk must be at least 1")
    for c in args.check:
        f, _, s = c.partition("/")
        if not (f.isdigit() and s.isdigit()) or (int(f), int(s)) not in GRID:
            parser.error(f"--check {c}: not a fast/slow pair of the grid")
    return args


# ---------------------------------------------------------------------------------------------
# running


def _run(
    console: Console, key: str, python: Path, script: str, data: Path, extra: list[str]
) -> dict:
    """One engine process under run.py's launcher: its JSON line, wall time and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="tradeloom-grid-") as tmp:
        usage_path, out_path, err_path = (Path(tmp) / n for n in ("usage", "out", "err"))
        cmd = [sys.executable, "-I", "-S", "-c", bench_run._LAUNCHER, str(usage_path)]
        cmd += [str(python), str(ENGINES_DIR / script), "--data", str(data), *extra]
        busy0 = _cpu_busy_s()
        with (
            console.status(f"{key}: 1,000 combinations × 1M bars…"),
            out_path.open("w") as out,
            err_path.open("w") as err,
        ):
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=err, cwd=ENGINES_DIR, start_new_session=True
            )
            try:
                proc.wait(timeout=bench_run.CHILD_TIMEOUT_S)
            except BaseException:  # timeout or Ctrl-C: stop the engine with its launcher
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
        busy1 = _cpu_busy_s()
        busy = None if busy0 is None or busy1 is None else busy1 - busy0
        usage = json.loads(usage_path.read_text()) if usage_path.exists() else {}
        lines = [ln for ln in out_path.read_text().splitlines() if ln.startswith("{")]
        report = json.loads(lines[-1]) if lines else None
        tail = "\n".join(err_path.read_text(errors="replace").strip().splitlines()[-8:])
    ok = usage.get("exit") == 0 and report is not None
    maxrss = usage.get("maxrss_kib")
    result = {
        "ok": ok,
        "wall_s": usage.get("wall_s"),
        "maxrss_mib": None if maxrss is None else maxrss / 1024,
        "report": report or {},
        "error": None if ok else f"exit {usage.get('exit')}: {tail or 'no output'}",
        "others_cores": None,
    }
    if usage.get("wall_s") and busy is not None:
        own = usage.get("user_s", 0.0) + usage.get("sys_s", 0.0)
        result["others_cores"] = max(0.0, (busy - own) / usage["wall_s"])
    if ok:
        r = report or {}
        others = result["others_cores"]
        console.print(
            f"  {key:<10} warm {', '.join(f'{s:.2f}' for s in r['warm_s'])} s; first call "
            f"{r['first_s']:.2f} s; process {result['wall_s']:.1f} s, "
            f"{result['maxrss_mib']:,.0f} MiB; other processes used "
            + ("?" if others is None else f"{others:.2f}")
            + " cores meanwhile"
        )
    else:
        console.print(f"  [red]{key}: FAILED[/] {result['error']}")
    return result


def _cpu_busy_s() -> float | None:
    """Seconds of CPU the whole machine has spent busy (all processes, all cores) since boot."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def _free_path(path: Path) -> Path:
    k, candidate = 2, path
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
        k += 1
    return candidate


# ---------------------------------------------------------------------------------------------
# table


def _print_table(console: Console, runs: dict[str, dict], peer_status: str) -> None:
    table = Table(
        title="SMA crossover, fast 5..100 step 5 × slow 110..600 step 10 (1,000 combinations), "
        "1M bars",
        title_justify="left",
    )
    for name in ("engine", "version", "combinations", "bars", "warm s", "M bar·combos/s",
                 "first call s", "peak RSS MiB", "× vectorbt"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("engine", "version") else "right")
    rates: dict[str, float | None] = {}
    for key, r in runs.items():
        rep = r["report"]
        warm = statistics.median(rep["warm_s"]) if r["ok"] else None
        rates[key] = rep["combos"] * rep["bars"] / warm if warm else None
    base = rates.get("vectorbt")
    for key, r in runs.items():
        rep = r["report"]
        if not r["ok"]:
            table.add_row(key, *["—"] * 7, "[red]failed[/]", style="red")
            continue
        rate = rates[key]
        label = rep["label"]
        if len(rep["warm_s"]) > 1:
            label += f", median of {len(rep['warm_s'])}"
        table.add_row(
            label,
            rep["version"],
            f"{rep['combos']:,}",
            f"{rep['bars']:,}",
            f"{statistics.median(rep['warm_s']):.2f}",
            bench_run._fmt(None if rate is None else rate / 1e6, ".1f"),
            f"{rep['first_s']:.2f}",
            bench_run._fmt(r["maxrss_mib"], ",.0f"),
            bench_run._ratio(rate, base),
        )
    if "vectorbt" not in runs:
        table.add_row("vectorbt", "—", *["—"] * 7, style="dim")
    console.print(table)

    notes = []
    tl = runs.get("tradeloom", {})
    if tl.get("ok"):
        rep = tl["report"]
        kernel, total = rep.get("kernel_s"), rep.get("kernel_call_total_s")
        if kernel and total:
            notes.append(
                f"tradeloom: {rep['threads']} numba threads; in one more warm call the compiled "
                f"kernel (SMA signals + simulation, fused) took {kernel:.2f} of {total:.2f} s "
                f"({kernel / total:.0%}); import {rep['import_s']:.2f} s, load "
                f"{rep['setup_s']:.2f} s, process {tl['wall_s']:.1f} s"
            )
    vb = runs.get("vectorbt", {})
    if vb.get("ok"):
        rep = vb["report"]
        per_chunk = [statistics.median(c) for c in zip(*rep["chunk_s"], strict=True)]
        notes.append(
            f"vectorbt: {rep['calls']} chunks of {rep['chunk']} combinations, "
            f"{min(per_chunk):.1f}–{max(per_chunk):.1f} s each (signals + from_signals + trades), "
            f"summed; import {rep['import_s']:.2f} s, process {vb['wall_s']:.1f} s"
        )
    elif "vectorbt" not in runs:
        notes.append(f"[dim]vectorbt: {peer_status}[/]")
    for key, r in runs.items():
        if (r.get("others_cores") or 0.0) > BUSY_WARNING:
            notes.append(
                f"[yellow]{key}: other processes kept {r['others_cores']:.2f} of the 2 cores "
                "busy during its run: its time is inflated (tradeloom, on both cores, more "
                "than vectorbt, on one); rerun on a quiet machine[/]"
            )
    notes.append(
        "warm = one pass over the whole grid, numba already loaded; first call = the process' "
        "first call, the grid on the first "
        f"{tl.get('report', {}).get('warmup_bars', 0):,} bars (numba compilation or cache "
        "loading); M bar·combos/s = combinations × bars / warm s / 10⁶; peak RSS = the whole "
        "process; × vectorbt = this row's throughput ÷ vectorbt's"
    )
    for note in notes:
        console.print(f"  {note}")
    console.print()


# ---------------------------------------------------------------------------------------------
# correctness


class _Exact:
    """bench/engines/reference.py's exact integer-tick answer for every combination, plus the
    final PnL: closed PnL + a position still open at the end marked at the last close (what
    final equity − initial cash is). The same arithmetic as ``reference.exact``, which it is
    checked against on the ``--check`` combinations."""

    def __init__(self, data: Path) -> None:
        bars = pd.read_parquet(data, columns=["open", "close"])
        close = bars["close"].to_numpy()
        self.close_ticks = np.round(close * TICKS_PER_UNIT).astype(np.int64)
        self.sums = np.concatenate(([0], np.cumsum(self.close_ticks)))
        self.open = bars["open"].to_numpy()
        self.last_close = float(close[-1])

    def __call__(self, fast: int, slow: int) -> dict[str, Any]:
        sums, n = self.sums, len(self.close_ticks)
        t = np.arange(slow - 1, n)  # bars where both averages exist
        sign = np.sign(
            slow * (sums[t + 1] - sums[t + 1 - fast]) - fast * (sums[t + 1] - sums[t + 1 - slow])
        )
        prev, cur, bar = sign[:-1], sign[1:], t[1:]
        up, down = (cur > 0) & (prev <= 0), (cur < 0) & (prev >= 0)
        events = np.flatnonzero(up | down)
        trades, pnl, entry = 0, 0.0, None
        for b, is_up in zip(bar[events].tolist(), up[events].tolist(), strict=True):
            if b + 1 >= n:  # a signal on the last bar is not filled
                break
            if is_up:
                if entry is None:
                    entry = self.open[b + 1]
            elif entry is not None:
                pnl += (self.open[b + 1] - entry) * QUANTITY
                trades += 1
                entry = None
        final = pnl + (0.0 if entry is None else (self.last_close - entry) * QUANTITY)
        return {"trades": trades, "pnl": float(pnl), "ties": int((sign == 0).sum()),
                "final": float(final), "open": entry is not None}  # fmt: skip

    def reference(self, fast: int, slow: int) -> tuple[int, float, int]:
        return exact(self.close_ticks, self.open, fast, slow)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TOLERANCE


def _check(
    console: Console, data: Path, runs: dict[str, dict], checks: list[tuple[int, int]]
) -> dict[str, Any]:
    """Every combination against the exact reference; a table of the ``checks`` and of every
    combination where an engine differs from it; ``run_signals`` on its combinations."""
    out: dict[str, Any] = {"ok": True}
    tl_run = runs.get("tradeloom", {})
    if not tl_run.get("ok"):
        out["ok"] = False
        return out
    tl = {(f, s): (n, fin) for f, s, n, fin in tl_run["report"]["results"]}
    if sorted(tl) != sorted(GRID):
        console.print("[bold red]tradeloom did not return exactly the 1,000 combinations[/]")
        out["ok"] = False
        return out
    vb_run = runs.get("vectorbt", {})
    vb: dict[tuple[int, int], tuple[int, float, float, int]] = {}
    if vb_run.get("ok"):
        vb = {(f, s): (n, c, fin, o) for f, s, n, c, fin, o in vb_run["report"]["results"]}
        if sorted(vb) != sorted(GRID):
            console.print("[bold red]vectorbt did not return exactly the 1,000 combinations[/]")
            out["ok"] = False
            vb = {}

    exact_ = _Exact(data)
    with console.status("exact reference: 1,000 combinations…"):
        ref = {k: exact_(*k) for k in GRID}
    lines: list[str] = []
    own = [
        k
        for k in checks
        if (ref[k]["trades"], ref[k]["pnl"], ref[k]["ties"]) != exact_.reference(*k)
    ]
    if own:  # this script's replay of the reference must be the reference
        lines.append(f"[bold red]✗ this script's exact answer differs from reference.py: {own}[/]")
        out["ok"] = False

    def tl_ok(k: tuple[int, int]) -> bool:
        return tl[k][0] == ref[k]["trades"] and _close(tl[k][1], ref[k]["final"])

    def vb_ok(k: tuple[int, int]) -> bool:
        n, closed, final, _ = vb[k]
        r = ref[k]
        return n == r["trades"] and _close(closed, r["pnl"]) and _close(final, r["final"])

    tl_wrong = [k for k in GRID if not tl_ok(k)]
    vb_wrong = [k for k in GRID if not vb_ok(k)] if vb else []
    with_ties = sum(1 for r in ref.values() if r["ties"])
    n_open = sum(1 for r in ref.values() if r["open"])
    summary = [
        ("tradeloom sweep()", tl_wrong),
        *([("vectorbt", vb_wrong)] if vb else []),
    ]
    for name, wrong in summary:
        at_ties = [k for k in wrong if ref[k]["ties"]]
        if not wrong:
            lines.append(f"[green]✓[/] {name}: 1,000/1,000 combinations equal the exact answer")
            continue
        # float rounding deciding an exact tie is reported; a mismatch anywhere else fails
        style = "yellow" if len(at_ties) == len(wrong) else "bold red"
        why = (
            "every one at a combination whose averages tie exactly on some bar, where float "
            "rounding decides the crossing"
            if len(at_ties) == len(wrong)
            else f"{len(wrong) - len(at_ties)} of them with no exact tie"
        )
        lines.append(
            f"[{style}]{'!' if style == 'yellow' else '✗'} {name}: {1000 - len(wrong):,}/1,000 "
            f"combinations equal the exact answer; {len(wrong)} differ ({why})[/]"
        )
        if len(at_ties) < len(wrong):
            out["ok"] = False
    if vb:
        both = [k for k in GRID if tl[k][0] == vb[k][0] and _close(tl[k][1], vb[k][2])]
        worst = max(abs(tl[k][1] - vb[k][2]) for k in both)
        lines.append(
            f"tradeloom and vectorbt agree with each other on {len(both):,}/1,000 combinations "
            f"(round trips exactly, final PnL to {worst:.1e})"
        )
    lines.append(
        f"{with_ties} of the 1,000 combinations have an exact tie on some bar; {n_open} end with a "
        "position open, so final PnL (final equity − initial cash, the open position marked at "
        "the last close: what sweep() returns) is compared, and closed PnL where an engine gives "
        "it (vectorbt, run_signals)"
    )

    columns = ("fast/slow", "ties", "exact trades", "exact closed PnL", "exact final PnL",
               "tradeloom trades", "tradeloom final PnL", "vectorbt trades",
               "vectorbt closed PnL", "vectorbt final PnL", "agree")  # fmt: skip

    def table(title: str, keys: list[tuple[int, int]]) -> Table:
        tab = Table(title=title, title_justify="left")
        for name in columns:
            tab.add_column(name, justify="left" if name == "fast/slow" else "right")
        for k in keys:
            r = ref[k]
            good = tl_ok(k) and (vb_ok(k) if vb else True)
            cells = ["—"] * 3
            if vb:
                n, closed, final, _ = vb[k]
                cells = [f"{n:,}", f"{closed:.4f}", f"{final:.4f}"]
            table_mark = "[green]✓[/]" if good else "[yellow]✗[/]" if r["ties"] else "[red]✗[/]"
            tab.add_row(
                f"{k[0]}/{k[1]}",
                str(r["ties"]),
                f"{r['trades']:,}",
                f"{r['pnl']:.4f}",
                f"{r['final']:.4f}",
                f"{tl[k][0]:,}",
                f"{tl[k][1]:.4f}",
                *cells,
                table_mark,
            )
        return tab

    console.print(table("Checked combinations against the exact integer-tick reference", checks))
    differing = sorted(set(tl_wrong) | set(vb_wrong))
    if differing:
        console.print(table("Every combination where an engine differs from the exact answer",
                            differing))  # fmt: skip

    singles = []
    for f, s, n, pnl, fin in tl_run["report"].get("single", []):
        r = ref[f, s]
        good = n == r["trades"] and _close(pnl, r["pnl"])
        good = good and n == tl[f, s][0] and _close(fin, tl[f, s][1])
        singles.append([f, s, n, pnl, fin, good])
        out["ok"] = out["ok"] and good
        lines.append(
            f"{'[green]✓[/]' if good else '[bold red]✗[/]'} run_signals {f}/{s}: {n:,} closed "
            f"trades, closed PnL {pnl:.4f} (exact {r['trades']:,} / {r['pnl']:.4f}); final PnL "
            f"{fin:.4f} (its sweep row: {tl[f, s][0]:,} trades, {tl[f, s][1]:.4f})"
        )
    lines.append(
        f"agree = round trips equal and every PnL within {TOLERANCE:g} of the exact answer; "
        "closed PnL = Σ (exit − entry) × 10; ties = bars where the two averages are exactly "
        "equal (BENCHMARK.md's rule: not a cross)"
    )
    for line in lines:
        console.print(f"  {line}")
    console.print()
    out |= {
        "notes": lines,
        "tradeloom_wrong": [[*k, *tl[k], ref[k]["trades"], ref[k]["final"], ref[k]["ties"]]
                            for k in tl_wrong],
        "vectorbt_wrong": [[*k, *vb[k], ref[k]["trades"], ref[k]["pnl"], ref[k]["final"],
                            ref[k]["ties"]] for k in vb_wrong],
        "checks": [[*k, *ref[k].values(), *tl[k]] for k in checks],
        "single": singles,
    }  # fmt: skip
    return out


if __name__ == "__main__":
    sys.exit(main())
