"""Where trials run: in this process, in a pool of local processes, or on a Dask cluster.

Every executor takes chunks of ``(number, params)`` trials and yields their outcomes as the
chunks finish. The :class:`~tradeloom.research.evaluate.Evaluator` (the deployment and its
bars) travels once per worker — as the pool's initializer argument, or scattered to every
Dask worker — never once per trial. Outcomes are a function of the params alone, so the
executor changes the time a search takes, never its trials.

With several worker processes, each one's numba kernels get ``cores // workers`` threads, so
the machine is not oversubscribed.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from tradeloom.errors import ConfigError

if TYPE_CHECKING:
    from tradeloom.research.evaluate import Evaluator, TrialOutcome

__all__ = ["EXECUTORS", "DaskExecutor", "Executor", "InlineExecutor", "ProcessExecutor", "make"]

EXECUTORS = ("inline", "process", "dask")

Chunk = Sequence[tuple[int, dict[str, Any]]]


class Executor(Protocol):
    workers: int

    def run(self, chunks: Sequence[Chunk]) -> Iterator[list[TrialOutcome]]:
        """Outcomes of each chunk, as chunks finish (in any order)."""
        ...

    def close(self) -> None: ...


def make(
    kind: str, evaluator: Evaluator, *, workers: int | None = None, scheduler: str | None = None
) -> Executor:
    """An executor of ``kind`` (``inline``, ``process`` or ``dask``) for ``evaluator``.
    ``workers`` defaults to the number of cores; ``scheduler`` (``tcp://host:port``) makes
    ``dask`` use an existing cluster instead of starting a local one."""
    if kind not in EXECUTORS:
        raise ConfigError(
            f"unknown executor {kind!r}; use one of {', '.join(EXECUTORS)}", path="--executor"
        )
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}", path="--workers")
    if scheduler and kind != "dask":
        raise ConfigError("--scheduler needs --executor dask", path="--scheduler")
    if kind == "inline":
        return InlineExecutor(evaluator)
    count = workers or os.cpu_count() or 1
    if kind == "process":
        return ProcessExecutor(evaluator, count)
    return DaskExecutor(evaluator, count, scheduler)


class InlineExecutor:
    """Chunks one after the other in this process (numba still uses every core)."""

    workers = 1

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator

    def run(self, chunks: Sequence[Chunk]) -> Iterator[list[TrialOutcome]]:
        for chunk in chunks:
            yield self.evaluator.evaluate(chunk)

    def close(self) -> None:
        pass


# --- process pool -------------------------------------------------------------------------------
_WORKER_EVALUATOR: Evaluator | None = None


def _threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def _init_worker(evaluator: Evaluator, threads: int) -> None:
    global _WORKER_EVALUATOR
    _WORKER_EVALUATOR = evaluator
    _limit_threads(threads)


def _limit_threads(threads: int) -> None:
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def _evaluate_in_worker(chunk: Chunk) -> list[TrialOutcome]:
    assert _WORKER_EVALUATOR is not None, "worker was not initialised"
    return _WORKER_EVALUATOR.evaluate(chunk)


class ProcessExecutor:
    """A pool of ``workers`` fresh processes (spawned, not forked: numba's thread pools do not
    survive a fork)."""

    def __init__(self, evaluator: Evaluator, workers: int) -> None:
        self.workers = workers
        self.pool = cf.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(evaluator, _threads_per_worker(workers)),
        )

    def run(self, chunks: Sequence[Chunk]) -> Iterator[list[TrialOutcome]]:
        futures = [self.pool.submit(_evaluate_in_worker, chunk) for chunk in chunks]
        try:
            for future in cf.as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


# --- Dask ---------------------------------------------------------------------------------------
def _evaluate_on_dask(evaluator: Evaluator, chunk: Chunk, threads: int) -> list[TrialOutcome]:
    _limit_threads(threads)
    return evaluator.evaluate(chunk)


class DaskExecutor:
    """Chunks as Dask tasks: on the cluster at ``scheduler``, or on a ``LocalCluster`` of
    ``workers`` single-threaded worker processes started (and stopped) here."""

    def __init__(self, evaluator: Evaluator, workers: int, scheduler: str | None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError(
                "--executor dask needs Dask: pip install 'tradeloom[dask]'", path="--executor"
            ) from None
        self.cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="5s")
            except (OSError, TimeoutError) as exc:
                raise ConfigError(
                    f"cannot reach the Dask scheduler at {scheduler} ({exc}); check the address "
                    "(tcp://host:port) and that the scheduler is running",
                    path="--scheduler",
                ) from None
            self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))
            self.threads = 1
        else:
            self.cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=40,
            )  # fmt: skip
            self.client = Client(self.cluster)
            self.workers = workers
            self.threads = _threads_per_worker(workers)
        self.evaluator = self.client.scatter(evaluator, broadcast=True)

    def run(self, chunks: Sequence[Chunk]) -> Iterator[list[TrialOutcome]]:
        from distributed import as_completed

        futures = [
            self.client.submit(
                _evaluate_on_dask, self.evaluator, list(chunk), self.threads, pure=False
            )
            for chunk in chunks
        ]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
