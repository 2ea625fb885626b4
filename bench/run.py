"""The speed benchmark: tradeloom's engines side by side with the peers, on the SMA workload.

    uv run python bench/run.py                      # 100k and 1M bars, 3 runs of each engine
    uv run python bench/run.py --quick              # 100k bars, 1 run: a smoke test
    uv run python bench/run.py --sizes 100000 --repeat 5 --engines tradeloom-event backtrader
    uv run python bench/run.py --sweep              # also the 100-combination sweep

Each engine is one script in ``bench/engines/`` that runs the workload once and prints one JSON
line (``engine, version, bars, round_trips, pnl, import_s, setup_s, loop_s, post_s``). This
script runs every engine as its own process, ``--repeat`` times per size, round-robin so that the
machine's drift spreads over all engines; measures each process' wall time and its own peak RSS;
takes medians; checks that every engine agrees with the known answer and with the others; prints
one table per size and saves every raw measurement to ``bench/results/<date>.json``.

The peers (backtrader, backtesting.py, vectorbt, NautilusTrader) live in their own environment,
``bench/.venv-peers``, created from ``bench/peers-requirements.txt`` on first use; they are never
dependencies of tradeloom. The tradeloom scripts run with this script's own Python (the
workspace's, under ``uv run``). ``bench/engines/reference.py`` gives the exact answer for any size
and any (fast, slow), in integer ticks; see docs/benchmarks.md for what every column means.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

BENCH = Path(__file__).resolve().parent
ENGINES_DIR = BENCH / "engines"
DATA_DIR = BENCH / "data"
RESULTS_DIR = BENCH / "results"
PEERS_VENV = BENCH / ".venv-peers"
PEERS_REQUIREMENTS = BENCH / "peers-requirements.txt"
PEERS_STAMP = PEERS_VENV / "tradeloom-bench.json"
"""Written after an install: the requirements' hash and which peers failed to install."""

KNOWN_ANSWERS: dict[int, tuple[int, float]] = {
    100_000: (1_926, -95.7042),
    1_000_000: (19_689, -629.2533),
}
"""Closed round trips and PnL (4 decimals) from BENCHMARK.md. Every size is also checked against
bench/engines/reference.py (exact, integer ticks), which must reproduce these two."""

FAST_SLOW = (10, 30)
SWEEP_BARS = 100_000
CHILD_TIMEOUT_S = 3_600
clock = time.perf_counter


@dataclass(frozen=True)
class Engine:
    """One engine of the benchmark and how to run its script."""

    key: str
    """The name on the command line and in the tables."""
    script: str
    env: str
    """``"workspace"`` (this Python) or ``"peers"`` (bench/.venv-peers)."""
    module: str
    """Imported to decide whether the engine is available at all."""
    peer: str | None = None
    """The peer's requirement names in peers-requirements.txt (installed together)."""
    sweep_script: str | None = None
    """The engine's script for the sweep, if it has one."""


ENGINES: tuple[Engine, ...] = (
    Engine("tradeloom-event", "tradeloom_event.py", "workspace", "tradeloom.api"),
    Engine("tradeloom-stream", "tradeloom_event_stream.py", "workspace", "tradeloom.api"),
    Engine(
        "tradeloom-vector",
        "tradeloom_vector.py",
        "workspace",
        "tradeloom.vector",
        sweep_script="tradeloom_vector_sweep.py",
    ),
    Engine("backtesting.py", "backtesting_bench.py", "peers", "backtesting", peer="backtesting"),
    Engine(
        "vectorbt",
        "vectorbt_bench.py",
        "peers",
        "vectorbt",
        peer="vectorbt plotly",
        sweep_script="vectorbt_sweep.py",
    ),
    Engine(
        "nautilus_trader",
        "nautilus_bench.py",
        "peers",
        "nautilus_trader",
        peer="nautilus_trader nautilus-trader",
    ),
    Engine("backtrader", "backtrader_bench.py", "peers", "backtrader", peer="backtrader"),
)
ENGINE_BY_KEY = {e.key: e for e in ENGINES}
EVENT, VECTOR = "tradeloom-event", "tradeloom-vector"

# Runs one engine process and reports that process' own resource usage. A child's ru_maxrss on
# Linux starts from the peak RSS of the process image it exec'd from, so a child forked straight
# from this script would inherit this script's peak as a floor. The launcher is a bare Python
# (-I -S: a few MiB) that forks and execs the engine, then reads the engine's rusage from wait4:
# the engine's peak is its own, whatever this script holds.
_LAUNCHER = """
import json, os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(out, "w") as f:
    json.dump({"wall_s": wall, "maxrss_kib": usage.ru_maxrss, "user_s": usage.ru_utime,
               "sys_s": usage.ru_stime, "exit": os.waitstatus_to_exitcode(status)}, f)
"""


@dataclass
class Run:
    """One process of one engine on one size."""

    engine: str
    bars: int
    repeat: int
    ok: bool
    wall_s: float | None = None
    maxrss_mib: float | None = None
    report: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    console = Console()
    if not console.is_terminal:  # a log file or a pipe: wide enough that tables never wrap
        console = Console(width=170)
    engines = [ENGINE_BY_KEY[k] for k in args.engines]
    started = datetime.now(UTC)  # noqa: TID251 - when the benchmark ran, for its record
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    sizes = list(dict.fromkeys(args.sizes))
    needed = sorted(set(sizes) | ({SWEEP_BARS} if args.sweep else set()))
    for n in needed:
        _ensure_data(console, n)

    peers = (
        _ensure_peers(console, args.reinstall_peers)
        if any(e.env == "peers" for e in engines)
        else PeerEnv(python=None, failed={}, install_s=None, reused=True)
    )
    available, unavailable = _probe(console, engines, peers)

    runs: list[Run] = []
    if sizes and available:
        runs = _run_all(console, available, sizes, args.repeat)
    expected = {n: _expected(console, n) for n in sizes}
    summaries = {
        n: _summarise(expected[n], [r for r in runs if r.bars == n], engines) for n in sizes
    }
    disagreements = []
    for n in sizes:
        _print_table(console, n, summaries[n], unavailable, args.repeat)
        disagreements += [s for s in summaries[n].values() if s["agrees"] is not True]

    sweep: dict[str, Any] | None = None
    if args.sweep:
        sweep = _run_sweep(console, engines, available, unavailable, args.repeat)
        if sweep.get("agrees") is False:
            disagreements.append({"engine": "sweep"})

    path = _save(started, args, peers, available, unavailable, runs, summaries, sweep)
    console.print(f"Raw measurements: [bold]{path.relative_to(BENCH.parent)}[/]")
    if disagreements:
        console.print(
            Panel(
                "At least one engine failed or DISAGREES with the known answer or with the "
                "others (rows marked ✗ above): its speed figures do not measure the workload.",
                title="DISAGREEMENT",
                style="bold red",
            )
        )
        return 1
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="*",
        default=[100_000, 1_000_000],
        help="bar counts to run (default: 100000 1000000; none with --sweep: the sweep only)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="processes per engine and size (default 3)"
    )
    parser.add_argument(
        "--engines",
        nargs="+",
        choices=[e.key for e in ENGINES],
        default=[e.key for e in ENGINES],
        metavar="ENGINE",
        help=f"engines to run (default: all): {', '.join(e.key for e in ENGINES)}",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help=f"also run the 100-combination sweep on {SWEEP_BARS:,} bars (vectorbt, "
        "tradeloom-vector)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="100000 bars, one run per engine: a smoke test"
    )
    parser.add_argument(
        "--reinstall-peers",
        action="store_true",
        help="recreate bench/.venv-peers from bench/peers-requirements.txt",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeat = [100_000], 1
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if any(n < 100 for n in args.sizes):
        parser.error("--sizes: at least 100 bars each")
    return args


# ---------------------------------------------------------------------------------------------
# data and environments


def _data_path(n: int) -> Path:
    return DATA_DIR / f"bars_{n}.parquet"


def _ensure_data(console: Console, n: int) -> None:
    path = _data_path(n)
    if path.exists():
        return
    console.print(f"Generating {path.relative_to(BENCH.parent)} ({n:,} bars, seed 42)…")
    cmd = [sys.executable, str(BENCH / "gen_data.py"), "--out", str(DATA_DIR), "--sizes", str(n)]
    subprocess.run(cmd, check=True)


@dataclass
class PeerEnv:
    python: Path | None
    failed: dict[str, str]
    """Peer requirement group → why it is not installed."""
    install_s: float | None
    reused: bool


def _requirement_name(line: str) -> str | None:
    line = line.split("#", 1)[0].strip()
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
    return match.group(0).lower().replace("_", "-") if match else None


def _peer_groups() -> tuple[list[str], dict[str, list[str]]]:
    """The requirement lines shared by every peer, and each peer's own lines."""
    own: dict[str, list[str]] = {e.key: [] for e in ENGINES if e.peer}
    names = {n.replace("_", "-"): e.key for e in ENGINES if e.peer for n in (e.peer or "").split()}
    shared = []
    for raw in PEERS_REQUIREMENTS.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        name = _requirement_name(line)
        if name is None:
            continue
        if name in names:
            own[names[name]].append(line)
        else:
            shared.append(line)
    return shared, own


def _ensure_peers(console: Console, reinstall: bool) -> PeerEnv:
    """bench/.venv-peers, created and filled on first use, reused after."""
    python = _peers_python()
    digest = hashlib.sha256(PEERS_REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and PEERS_STAMP.exists() and not reinstall:
        stamp = json.loads(PEERS_STAMP.read_text())
        if stamp.get("requirements_sha256") == digest:
            return PeerEnv(python, stamp.get("failed", {}), stamp.get("install_s"), reused=True)
        console.print("bench/peers-requirements.txt changed: reinstalling the peers.")
    uv = shutil.which("uv")
    if uv is None:
        reason = "uv is not on PATH (run this script with `uv run python bench/run.py`)"
        console.print(f"[red]Cannot install the peers: {reason}[/]")
        return PeerEnv(None, {e.key: reason for e in ENGINES if e.peer}, None, reused=False)

    console.rule("Installing the peers into bench/.venv-peers (first use)")
    console.print(
        "backtrader, backtesting.py, vectorbt and NautilusTrader, pinned in "
        "bench/peers-requirements.txt; NautilusTrader is large, so this can take a few minutes."
    )
    t0 = clock()
    if PEERS_VENV.exists():
        shutil.rmtree(PEERS_VENV)
    if subprocess.run([uv, "venv", "--python", "3.11", str(PEERS_VENV)]).returncode != 0:
        reason = "`uv venv --python 3.11 bench/.venv-peers` failed (see above)"
        return PeerEnv(None, {e.key: reason for e in ENGINES if e.peer}, None, reused=False)
    install = [uv, "pip", "install", "--python", str(python), "--no-build"]
    failed: dict[str, str] = {}
    all_at_once = subprocess.run([*install, "-r", str(PEERS_REQUIREMENTS)])
    if all_at_once.returncode != 0:
        console.print("[yellow]Installing every peer together failed; trying one at a time.[/]")
        shared, own = _peer_groups()
        for key, lines in own.items():
            console.print(f"Installing {key}: {' '.join(lines)}")
            if subprocess.run([*install, *lines, *shared]).returncode != 0:
                failed[key] = (
                    f"`uv pip install {' '.join(lines)}` failed on this machine; "
                    "retry with --reinstall-peers"
                )
    install_s = clock() - t0
    PEERS_STAMP.write_text(
        json.dumps(
            {"requirements_sha256": digest, "failed": failed, "install_s": install_s}, indent=2
        )
    )
    console.print(
        f"Peers installed in {install_s:.0f} s" + (f"; failed: {failed}" if failed else "")
    )
    return PeerEnv(python, failed, install_s, reused=False)


def _python_for(engine: Engine, peers: PeerEnv) -> Path | None:
    return Path(sys.executable) if engine.env == "workspace" else peers.python


def _peers_python() -> Path:
    return PEERS_VENV / "bin" / "python"


def _probe(
    console: Console, engines: list[Engine], peers: PeerEnv
) -> tuple[list[Engine], dict[str, dict[str, str]]]:
    """Engines that can run here; the others with the reason why not."""
    available, unavailable = [], {}
    for engine in engines:
        python = _python_for(engine, peers)
        if engine.key in peers.failed or python is None:
            reason = peers.failed.get(engine.key, "the peers environment is missing")
            unavailable[engine.key] = {"status": "not installed", "reason": reason}
            continue
        code = f"import {engine.module}"
        probe = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or ["?"])[-1]
            status = "not available" if engine.env == "workspace" else "not installed"
            unavailable[engine.key] = {"status": status, "reason": f"`{code}` failed: {last}"}
        else:
            available.append(engine)
    for key, why in unavailable.items():
        console.print(f"[yellow]{key}: {why['status']}[/] ({why['reason']})")
    return available, unavailable


# ---------------------------------------------------------------------------------------------
# running


def _run_process(python: Path, script: Path, data: Path) -> tuple[dict[str, Any], dict | None, str]:
    """Run one engine script under the launcher; (usage, its JSON line or None, stderr tail)."""
    with tempfile.TemporaryDirectory(prefix="tradeloom-bench-") as tmp:
        usage_path, out_path, err_path = (Path(tmp) / n for n in ("usage", "out", "err"))
        cmd = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(usage_path)]
        cmd += [str(python), str(script), "--data", str(data)]
        with out_path.open("w") as out, err_path.open("w") as err:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=err, cwd=script.parent, start_new_session=True
            )
            try:
                proc.wait(timeout=CHILD_TIMEOUT_S)
            except BaseException:  # timeout or Ctrl-C: stop the engine with its launcher
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
        usage = json.loads(usage_path.read_text()) if usage_path.exists() else {}
        lines = [ln for ln in out_path.read_text().splitlines() if ln.startswith("{")]
        report = json.loads(lines[-1]) if lines else None
        tail = "\n".join(err_path.read_text(errors="replace").strip().splitlines()[-5:])
    return usage, report, tail


def _progress_columns() -> tuple[Any, ...]:
    return (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )


def _run_all(console: Console, engines: list[Engine], sizes: list[int], repeat: int) -> list[Run]:
    runs: list[Run] = []
    with Progress(*_progress_columns(), console=console) as progress:
        task = progress.add_task("benchmark", total=len(sizes) * repeat * len(engines))
        for n in sizes:
            for rep in range(repeat):
                # round-robin, and a different engine first on every repeat
                order = engines[rep % len(engines) :] + engines[: rep % len(engines)]
                for engine in order:
                    progress.update(
                        task, description=f"{engine.key} · {n:,} bars · run {rep + 1}/{repeat}"
                    )
                    python = Path(sys.executable) if engine.env == "workspace" else _peers_python()
                    run = _measure(engine, python, n, rep)
                    runs.append(run)
                    progress.console.print(_run_line(run))
                    progress.advance(task)
    return runs


def _measure(engine: Engine, python: Path, n: int, rep: int) -> Run:
    usage, report, tail = _run_process(python, ENGINES_DIR / engine.script, _data_path(n))
    run = Run(engine=engine.key, bars=n, repeat=rep, ok=False)
    run.wall_s = usage.get("wall_s")
    if usage.get("maxrss_kib") is not None:
        run.maxrss_mib = usage["maxrss_kib"] / 1024
    if usage.get("exit") != 0 or report is None:
        run.error = f"exit {usage.get('exit')}: {tail or 'no output'}"
        return run
    if report.get("bars") != n:
        run.error = f"read {report.get('bars')} bars, expected {n}"
    run.ok = run.error is None
    run.report = report
    return run


def _run_line(run: Run) -> str:
    if not run.ok:
        return f"  [red]{run.engine} {run.bars:,}: FAILED[/] {run.error}"
    r = run.report
    return (
        f"  {run.engine:<16} {run.bars:>9,} bars  loop {r['loop_s']:8.3f} s  "
        f"process {run.wall_s:7.2f} s  {run.maxrss_mib:6.0f} MiB  "
        f"{r['round_trips']:,} round trips, PnL {r['pnl']:.4f}"
    )


# ---------------------------------------------------------------------------------------------
# summarising and printing


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _expected(console: Console, n: int) -> tuple[int, float]:
    """The answer for ``n`` bars: the exact reference, checked against BENCHMARK.md's."""
    reference = _reference(n, sweep=False)[FAST_SLOW][:2]
    known = KNOWN_ANSWERS.get(n)
    if known is not None and reference != known:
        console.print(
            f"[bold red]The exact reference gives {reference} for {n:,} bars, BENCHMARK.md says "
            f"{known}: bench/data/bars_{n}.parquet is not BENCHMARK's data (delete it to "
            "regenerate it)[/]"
        )
    return known or reference


def _summarise(
    known: tuple[int, float], runs: list[Run], engines: list[Engine]
) -> dict[str, dict[str, Any]]:
    """Per engine: medians over its successful runs, its answer and whether it agrees."""
    out: dict[str, dict[str, Any]] = {}
    for engine in engines:
        mine = [r for r in runs if r.engine == engine.key]
        if not mine:
            continue
        good = [r for r in mine if r.ok]
        answers = sorted({(r.report["round_trips"], round(r.report["pnl"], 4)) for r in good})
        s: dict[str, Any] = {
            "engine": engine.key,
            "runs": len(mine),
            "failed": len(mine) - len(good),
            "errors": [r.error for r in mine if r.error],
            "answers": answers,
        }
        if good:
            rep = good[0].report
            s["version"] = rep["version"]
            for key in ("loop_s", "import_s", "setup_s", "post_s"):
                s[key] = _median([r.report[key] for r in good])
            s["warm_loop_s"] = _median([r.report.get("warm_loop_s") for r in good])
            s["strategy_loop_s"] = _median([r.report.get("strategy_loop_s") for r in good])
            s["wall_s"] = _median([r.wall_s for r in good])
            s["maxrss_mib"] = _median([r.maxrss_mib for r in good])
        out[engine.key] = s

    consensus = _consensus([s["answers"] for s in out.values()])
    for s in out.values():
        s["known"] = list(known) if known else None
        reasons = []
        if s["failed"]:
            reasons.append(f"{s['failed']} of {s['runs']} runs failed")
        if len(s["answers"]) > 1:
            reasons.append(f"repeats differ: {s['answers']}")
        elif s["answers"]:
            answer = s["answers"][0]
            if known and answer != known:
                reasons.append(
                    f"got {answer[0]:,} / {answer[1]:.4f}, known {known[0]:,} / {known[1]:.4f}"
                )
            if consensus and answer != consensus:
                reasons.append(f"others say {consensus[0]:,} / {consensus[1]:.4f}")
        s["agrees"] = None if not s["answers"] else not reasons
        s["disagreement"] = "; ".join(reasons)
    return out


def _consensus(answer_sets: list[list[tuple[int, float]]]) -> tuple[int, float] | None:
    """The answer most engines gave (each engine counted once), or None without a majority."""
    votes: dict[tuple[int, float], int] = {}
    for answers in answer_sets:
        if len(answers) == 1:
            votes[answers[0]] = votes.get(answers[0], 0) + 1
    if not votes:
        return None
    best = max(votes.values())
    winners = [a for a, v in votes.items() if v == best]
    return winners[0] if len(winners) == 1 and best * 2 > sum(votes.values()) else None


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{unit}"


def _rate(bars: int, seconds: float | None) -> float | None:
    return None if not seconds else bars / seconds


def _human(rate: float | None) -> str:
    if rate is None:
        return "—"
    for scale, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if rate >= scale:
            return f"{rate / scale:.3g}{suffix}"
    return f"{rate:.3g}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None:
        return "—"
    r = ours / theirs
    return f"{r:.3g}×"


def _rows(summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows: one per engine, two (first call, warm call) where the script measured both."""
    rows = []
    for key, s in summary.items():
        if s.get("warm_loop_s") is None:
            rows.append({"label": key, "s": s, "loop_s": s.get("loop_s"), "warm": False})
        else:
            rows.append(
                {"label": f"{key} (first call)", "s": s, "loop_s": s["loop_s"], "warm": False}
            )
            rows.append(
                {"label": f"{key} (warm call)", "s": s, "loop_s": s["warm_loop_s"], "warm": True}
            )
    return rows


def _print_table(
    console: Console,
    n: int,
    summary: dict[str, dict[str, Any]],
    unavailable: dict[str, dict[str, str]],
    repeat: int,
) -> None:
    known = next((s["known"] for s in summary.values()), None)
    source = "BENCHMARK.md" if n in KNOWN_ANSWERS else "the exact reference"
    title = f"{n:,} bars — medians of {repeat} process{'es' if repeat > 1 else ''} per engine"
    caption = (
        f"known answer ({source}): {known[0]:,} round trips, PnL {known[1]:.4f}" if known else ""
    )
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for name, justify in (
        ("engine", "left"),
        ("version", "left"),
        ("loop s", "right"),
        ("loop bars/s", "right"),
        ("import+setup s", "right"),
        ("process s", "right"),
        ("peak RSS MiB", "right"),
        ("agrees", "center"),
        ("event ÷ this", "right"),
        ("vector ÷ this", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]

    rows = _rows(summary)
    event_rate = _rate(n, summary.get(EVENT, {}).get("loop_s"))
    vector_rate = _rate(n, summary.get(VECTOR, {}).get("loop_s"))  # its first call
    for row in rows:
        s = row["s"]
        rate = _rate(n, row["loop_s"])
        if s["failed"] or s["agrees"] is None:
            mark = "[bold red]✗ failed[/]"
        elif s["agrees"]:
            mark = "[green]✓[/]"
        else:
            mark = "[bold red]✗ DISAGREES[/]"
        setup = None
        if s.get("import_s") is not None and not row["warm"]:
            setup = s["import_s"] + s["setup_s"]
        table.add_row(
            row["label"],
            s.get("version", "—"),
            _fmt(row["loop_s"], ".3f"),
            _human(rate),
            _fmt(setup, ".2f"),
            "—" if row["warm"] else _fmt(s.get("wall_s"), ".2f"),
            "—" if row["warm"] else _fmt(s.get("maxrss_mib"), ".0f"),
            mark,
            "—" if row["s"]["engine"] == EVENT else _ratio(event_rate, rate),
            "—" if row["s"]["engine"] == VECTOR else _ratio(vector_rate, rate),
            style="bold red" if s["agrees"] is False else None,
        )
    for key, why in unavailable.items():
        table.add_row(key, "—", "—", "—", "—", "—", "—", why["status"], "—", "—", style="dim")
    console.print(table)
    notes = []
    for key, s in summary.items():
        if s.get("disagreement"):
            notes.append(f"[bold red]{key}: {s['disagreement']}[/]")
        if s["failed"]:
            notes.append(f"[red]{key}: {s['errors'][0]}[/]")
        if s.get("strategy_loop_s") is not None:
            notes.append(
                f"{key}: loop includes its post-run analysis; the strategy loop alone took "
                f"{s['strategy_loop_s']:.2f} s"
            )
    for key, why in unavailable.items():
        notes.append(f"[dim]{key}: {why['reason']}[/]")
    notes.append(
        "loop = the backtest call only (imports, data loading and set-up excluded); process = the "
        "whole engine process, measured by the OS; 'event ÷ this' = tradeloom-event's loop "
        "bars/s over this row's, 'vector ÷ this' the same for tradeloom-vector's first call"
    )
    for note in notes:
        console.print(f"  {note}")
    console.print()


# ---------------------------------------------------------------------------------------------
# sweep


def _reference(n: int, *, sweep: bool) -> dict[tuple[int, int], tuple[int, float, int]]:
    """The exact integer-tick answer (bench/engines/reference.py): (fast, slow) →
    (round trips, PnL to 4 decimals, bars where the two averages tie exactly)."""
    cmd = [sys.executable, str(ENGINES_DIR / "reference.py"), "--data", str(_data_path(n))]
    done = subprocess.run([*cmd, *(["--sweep"] if sweep else [])], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench/engines/reference.py failed: {done.stderr.strip()}")
    rows = json.loads(done.stdout)["results"]
    return {(f, s): (t, round(p, 4), ties) for f, s, t, p, ties in rows}


def _run_sweep(
    console: Console,
    engines: list[Engine],
    available: list[Engine],
    unavailable: dict[str, dict[str, str]],
    repeat: int,
) -> dict[str, Any]:
    """The 100-combination sweep: vectorbt (one call over every combination) and tradeloom's
    vector engine, each checked combination by combination against the exact reference."""
    sweepers = [e for e in available if e.sweep_script]
    skipped = {
        e.key: unavailable[e.key] for e in engines if e.sweep_script and e.key in unavailable
    }
    reference = _reference(SWEEP_BARS, sweep=True)
    runs: list[dict[str, Any]] = []
    with Progress(*_progress_columns(), console=console) as progress:
        task = progress.add_task("sweep", total=repeat * len(sweepers))
        for rep in range(repeat):
            for engine in sweepers:
                progress.update(task, description=f"sweep · {engine.key} · run {rep + 1}/{repeat}")
                python = Path(sys.executable) if engine.env == "workspace" else _peers_python()
                script = ENGINES_DIR / (engine.sweep_script or "")
                usage, report, tail = _run_process(python, script, _data_path(SWEEP_BARS))
                ok = usage.get("exit") == 0 and report is not None
                maxrss = usage.get("maxrss_kib")
                runs.append(
                    {
                        "engine": engine.key,
                        "repeat": rep,
                        "ok": ok,
                        "wall_s": usage.get("wall_s"),
                        "maxrss_mib": None if maxrss is None else maxrss / 1024,
                        "report": report or {},
                        "error": None if ok else f"exit {usage.get('exit')}: {tail}",
                    }
                )
                progress.advance(task)

    table = Table(
        title=f"Sweep: fast 5..50 step 5 × slow 20..200 step 20 on {SWEEP_BARS:,} bars — "
        f"medians of {repeat}",
        title_justify="left",
    )
    for name in ("engine", "version", "combos", "calls", "first s", "warm s",
                 "bar·combos/s first", "bar·combos/s warm", "process s", "peak RSS MiB",
                 "vs exact"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("engine", "version") else "right")
    summary: dict[str, Any] = {
        "runs": runs,
        "engines": {},
        "unavailable": skipped,
        "reference": [[f, s, *v] for (f, s), v in reference.items()],
        "agrees": True,
    }
    notes = []
    for engine in sweepers:
        good = [r for r in runs if r["engine"] == engine.key and r["ok"]]
        if not good:
            errors = [r["error"] for r in runs if r["engine"] == engine.key]
            table.add_row(engine.key, *["—"] * 9, "[bold red]✗ failed[/]", style="red")
            notes.append(f"[red]{engine.key}: {errors[0]}[/]")
            summary["agrees"] = False
            continue
        rep = good[0]["report"]
        answers = {(f, s): (t, round(p, 4)) for f, s, t, p in rep["results"]}
        if any(r["report"]["results"] != rep["results"] for r in good):
            notes.append(f"[bold red]{engine.key}: the repeats disagree with each other[/]")
            summary["agrees"] = False
        shared = sorted(set(answers) & set(reference))
        wrong = [k for k in shared if answers[k] != reference[k][:2]]
        at_ties = [k for k in wrong if reference[k][2]]
        first, warm = (_median([r["report"][k] for r in good]) for k in ("first_s", "warm_s"))
        cells = rep["bars"] * rep["combos"]
        e = {
            "version": rep["version"],
            "combos": rep["combos"],
            "calls": rep["calls"],
            "first_s": first,
            "warm_s": warm,
            "wall_s": _median([r["wall_s"] for r in good]),
            "maxrss_mib": _median([r["maxrss_mib"] for r in good]),
            "checked": len(shared),
            "wrong": [[f, s, *answers[f, s], *reference[f, s]] for f, s in wrong],
            "sweep_first_s": _median([r["report"].get("sweep_first_s") for r in good]),
            "sweep_warm_s": _median([r["report"].get("sweep_warm_s") for r in good]),
            "sweep_error": rep.get("sweep_error"),
        }
        summary["engines"][engine.key] = e
        if not wrong:
            mark = f"[green]✓ {len(shared)}/{len(shared)}[/]"
        else:
            mark = f"[bold red]✗ {len(shared) - len(wrong)}/{len(shared)}[/]"
            detail = ", ".join(
                f"{f}/{s}: {answers[f, s][0]:,} / {answers[f, s][1]:.4f} "
                f"(exact {reference[f, s][0]:,} / {reference[f, s][1]:.4f})"
                for f, s in wrong[:4]
            )
            why = (
                "every one at a combination whose averages tie exactly on some bar, where "
                "float rounding decides the crossing"
                if len(at_ties) == len(wrong)
                else f"{len(wrong) - len(at_ties)} of them with no exact tie"
            )
            notes.append(
                f"[bold red]{engine.key} DISAGREES with the exact reference on {len(wrong)} "
                f"combinations ({why}): {detail}[/]"
            )
            # a peer's float tie-breaking is reported, not failed; any other mismatch fails
            if engine.env == "workspace" or len(at_ties) < len(wrong):
                summary["agrees"] = False
        table.add_row(
            rep.get("label", engine.key),
            rep["version"],
            str(rep["combos"]),
            str(rep["calls"]),
            _fmt(first, ".2f"),
            _fmt(warm, ".3f"),
            _human(_rate(cells, first)),
            _human(_rate(cells, warm)),
            _fmt(e["wall_s"], ".2f"),
            _fmt(e["maxrss_mib"], ".0f"),
            mark,
        )
        if e["sweep_first_s"] is not None:
            got = {(f, s_): n for f, s_, n in rep.get("sweep_results", [])}
            checked = sorted(set(got) & set(reference))
            off = [k for k in checked if got[k] != reference[k][0]]
            e["sweep_checked"], e["sweep_wrong"] = len(checked), [list(k) for k in off]
            if off or not checked:
                summary["agrees"] = False
                notes.append(
                    f"[bold red]{engine.key}: sweep() DISAGREES with the exact reference on the "
                    f"closed-trade count of {len(off)} of {len(checked)} combinations: {off[:4]}[/]"
                )
            sweep_cells = rep["bars"] * rep.get("sweep_combos", 0)
            table.add_row(
                f"{engine.key} (sweep(), 1 call)",
                rep["version"],
                str(rep.get("sweep_combos", "—")),
                "1",
                _fmt(e["sweep_first_s"], ".3f"),
                _fmt(e["sweep_warm_s"], ".3f"),
                _human(_rate(sweep_cells, e["sweep_first_s"])),
                _human(_rate(sweep_cells, e["sweep_warm_s"])),
                "—",
                "—",
                f"[green]✓ {len(checked)}/{len(checked)} trades[/]"
                if checked and not off
                else f"[bold red]✗ {len(checked) - len(off)}/{len(checked)} trades[/]",
            )
        if e["sweep_error"]:
            notes.append(f"[yellow]{engine.key}: sweep() could not be timed: {e['sweep_error']}[/]")
    for key, why in skipped.items():
        table.add_row(key, "—", *["—"] * 8, why["status"], style="dim")
        notes.append(f"[dim]{key}: {why['reason']}[/]")
    console.print(table)
    ties = [f"{f}/{s}" for (f, s), v in reference.items() if v[2]]
    notes.append(
        f"vs exact = combinations (fast < slow) matching bench/engines/reference.py's integer-tick "
        f"answer; the averages tie exactly on some bar at {', '.join(ties) or 'none'}"
    )
    notes.append(
        "first = the first call in a fresh process (numba compilation included); warm = the same "
        "call again (or the same pass over the grid, for one call per combination); "
        "bar·combos/s = bars × combinations / seconds; combos = the combinations simulated "
        "(tradeloom refuses the 10 with fast >= slow as configuration errors)"
    )
    for note in notes:
        console.print(f"  {note}")
    console.print()
    return summary


# ---------------------------------------------------------------------------------------------
# record


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
        info["cpu"] = model.group(1) if model else None
        meminfo = Path("/proc/meminfo").read_text()
        total = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
        info["memory_gib"] = round(int(total.group(1)) / 2**20, 1) if total else None
    except OSError:
        pass
    info["load_average"] = os.getloadavg()
    return info


def _git() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=BENCH, capture_output=True, text=True)
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def _save(
    started: datetime,
    args: argparse.Namespace,
    peers: PeerEnv,
    available: list[Engine],
    unavailable: dict[str, dict[str, str]],
    runs: list[Run],
    summaries: dict[int, dict[str, dict[str, Any]]],
    sweep: dict[str, Any] | None,
) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = started.strftime("%Y-%m-%d")
    path = RESULTS_DIR / f"{stem}.json"
    k = 2
    while path.exists():
        path = RESULTS_DIR / f"{stem}-{k}.json"
        k += 1
    record = {
        "started_utc": started.isoformat(timespec="seconds"),
        "command": ["bench/run.py", *sys.argv[1:]],
        "sizes": args.sizes,
        "repeat": args.repeat,
        "machine": _machine(),
        "git": _git(),
        "peers": {
            "requirements": PEERS_REQUIREMENTS.read_text(),
            "install_s": peers.install_s,
            "reused": peers.reused,
            "failed": peers.failed,
        },
        "engines": [e.key for e in available],
        "unavailable": unavailable,
        "known_answers": {str(n): list(a) for n, a in KNOWN_ANSWERS.items()},
        "runs": [r.__dict__ for r in runs],
        "summary": {str(n): s for n, s in summaries.items()},
        "sweep": sweep,
    }
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    return path


if __name__ == "__main__":
    sys.exit(main())
