"""What journaling a backtest costs: the demo with and without the journal store.

    uv run python bench/journal.py [--repeat 5] [--postgres URL] [--cli]

Times the demo as the CLI runs it (load the deployment, run the backtest, write every output
file) without a journal, with a SQLite journal (a fresh file per run) and, if a PostgreSQL URL
is given, with PostgreSQL (in a throwaway schema). The store exists before the timed runs
(creating the schema is a one-off). Best of ``--repeat`` each, in one process (imports
excluded: they are paid once either way). Prints the journal's share of the run time;
issue 6's target is at most 10%.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tradeloom.api import run_deployment
from tradeloom.config import load_deployment
from tradeloom.plugins import PluginHost
from tradeloom.report.outputs import write_outputs
from tradeloom.store import Store


def _demo_once(store_url: str | None, out: Path) -> tuple[float, float, int]:
    """Seconds for the whole demo, seconds in the journal, rows of orders journaled."""
    clock = time.perf_counter
    t0 = clock()
    host = PluginHost()
    config = resources.files("tradeloom.demo") / "demo.toml"
    with resources.as_file(config) as path:
        resolved = load_deployment([path], host=host)
    store = Store(store_url) if store_url else None
    result = run_deployment(resolved, host, journal=store, out_dir=out)
    write_outputs(result, out)
    total = clock() - t0
    rows = len(store.table("orders", result.run_id)) if store else 0
    if store is not None:
        store.close()
    return total, result.timings.get("journal", 0.0), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL to measure too")
    parser.add_argument(
        "--cli", action="store_true", help="also time `tradeloom demo` end to end in a subprocess"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tl-journal-"))
    _demo_once(None, tmp / "warm")  # warm caches: data, imports, numba

    def best(url_for_run) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
        runs = [_demo_once(url_for_run(i), tmp / f"out{i}") for i in range(args.repeat)]
        return min(runs, key=lambda r: r[0])

    rows: list[tuple[str, float, float, int]] = []
    base = best(lambda i: None)
    rows.append(("no journal", *base))
    sqlite_url = f"sqlite:///{tmp}/journal.db"
    Store(sqlite_url).close()  # the schema is created once, on first use, not per run
    rows.append(("SQLite (WAL)", *best(lambda i: sqlite_url)))
    if args.postgres:
        import psycopg
        from sqlalchemy.engine import make_url

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        u = make_url(args.postgres)
        conninfo = f"host={u.host} port={u.port or 5432} user={u.username} dbname={u.database}"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        url = f"{args.postgres}?options=-csearch_path%3D{schema}"
        Store(url).close()
        try:
            rows.append(("PostgreSQL", *best(lambda i: url)))
        finally:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")

    table = Table(title=f"Journal cost on the demo (best of {args.repeat})")
    for col in ("store", "demo run s", "journal s", "journal share", "order rows"):
        table.add_column(col, justify="right")
    for name, total, journal, n in rows:
        share = f"{journal / total * 100:.1f}%" if journal else "—"
        table.add_row(name, f"{total:.3f}", f"{journal:.3f}", share, str(n))
    Console().print(table)
    if args.cli:
        _cli_table(tmp, args.repeat)


def _cli_table(tmp: Path, repeat: int) -> None:
    """The demo as a user runs it: ``tradeloom demo`` end to end (start-up and imports
    included), with and without the journal; best of ``repeat``."""
    import subprocess
    import sys

    def best(extra: list[str]) -> float:
        times = []
        for i in range(repeat):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "tradeloom", "demo", "--out", str(tmp / f"cli{i}"), *extra],
                check=True, capture_output=True,
            )  # fmt: skip
            times.append(time.perf_counter() - t0)
        return min(times)

    url = f"sqlite:///{tmp}/cli.db"
    off, on = best(["--no-journal"]), best(["--store", url])
    table = Table(title=f"`tradeloom demo` end to end (best of {repeat})")
    for col in ("", "seconds", "journal share"):
        table.add_column(col, justify="right")
    table.add_row("--no-journal", f"{off:.2f}", "—")
    table.add_row("SQLite journal", f"{on:.2f}", f"{(on - off) / on * 100:.1f}%")
    Console().print(table)


if __name__ == "__main__":
    main()
