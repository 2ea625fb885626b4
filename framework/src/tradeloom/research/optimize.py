"""``optimize``: search a strategy's parameters, and say how much the winner is worth.

The search runs in batches. Each batch is proposed by the sampler from every finished trial
before it — ``grid`` (every combination, in order), ``random`` (trial *k*'s draw depends on
``(seed, k)`` only), or optuna's ``tpe``, ``cmaes`` and ``nsga2`` (seeded from
``(seed, first trial of the batch)``) — claimed in the journal database, evaluated by the
executor, and written back. So the trials depend on the space, the seed and the batch size,
never on the executor, the number of workers, or interruptions: a study stopped at any point
resumes where it was and ends with the trials an uninterrupted run would have had.

Every result carries the overfitting statistics of :mod:`tradeloom.research.overfitting`,
computed on the trials' daily returns: the Probabilistic Sharpe Ratio of the selected trial,
its Deflated Sharpe Ratio given the number of trials actually run and the variance of their
Sharpe ratios, and the Probability of Backtest Overfitting of the whole search by CSCV.
"""

from __future__ import annotations

import abc
import hashlib
import json
import math
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from loguru import logger

from tradeloom.errors import ConfigError
from tradeloom.research import overfitting as of
from tradeloom.research.evaluate import Evaluator, TrialOutcome
from tradeloom.research.space import Categorical, FloatRange, IntRange, SearchSpace
from tradeloom.store.studies import COMPLETE, FAILED, RUNNING, StudyRecord, StudyStore, TrialRecord

if TYPE_CHECKING:
    from tradeloom.config import ResolvedDeployment
    from tradeloom.data import MarketData
    from tradeloom.store import Store

__all__ = ["OptimizeResult", "Overfitting", "optimize", "overfitting_report"]

Progress = Callable[[int, int], None]


# --- proposals ----------------------------------------------------------------------------------
class _Proposer(abc.ABC):
    """Turns the study's history into the next batch of params."""

    def __init__(self, space: SearchSpace, target: int) -> None:
        self.space = space
        self.settings = space.optimize
        self.target = target

    def size(self, start: int) -> int:
        return max(0, min(self.claim_size(), self.target - start))

    def claim_size(self) -> int:
        return self.settings.batch

    @abc.abstractmethod
    def propose(
        self, history: list[TrialRecord], start: int
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """``(params, sampler attributes)`` of the trials numbered from ``start``."""

    def tell(self, record: TrialRecord) -> None:  # noqa: B027 (samplers without memory)
        """A trial's result is known (``record`` complete or failed)."""


class _GridProposer(_Proposer):
    def __init__(self, space: SearchSpace) -> None:
        self.combos = list(space.grid())
        super().__init__(space, len(self.combos))

    def claim_size(self) -> int:
        return max(self.settings.batch, 256)  # order-free: large claims keep the kernels busy

    def propose(self, history: list[TrialRecord], start: int) -> list[Any]:
        return [(self.combos[k], {}) for k in range(start, start + self.size(start))]


class _RandomProposer(_Proposer):
    def claim_size(self) -> int:
        return max(self.settings.batch, 256)

    def propose(self, history: list[TrialRecord], start: int) -> list[Any]:
        seed = self.settings.seed
        return [(self.space.sample(seed, k), {}) for k in range(start, start + self.size(start))]


class _OptunaProposer(_Proposer):
    """optuna's samplers over an in-memory optuna study mirrored from the journal."""

    def __init__(self, space: SearchSpace, target: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        super().__init__(space, target)
        self.optuna = optuna
        self.distributions = {name: _distribution(dim) for name, dim in space.dimensions.items()}
        self.study = optuna.create_study(
            directions=self.settings.resolved_directions, sampler=self._sampler(0)
        )
        self.known: set[int] = set()
        self.pending: dict[int, Any] = {}

    def _sampler(self, start: int) -> Any:
        samplers = self.optuna.samplers
        seed = int.from_bytes(
            hashlib.sha256(f"{self.settings.seed}:{start}".encode()).digest()[:4], "big"
        )
        kind = self.settings.sampler
        if kind == "tpe":
            return samplers.TPESampler(seed=seed, n_startup_trials=max(10, self.settings.batch))
        if kind == "cmaes":
            return samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        population = self.settings.population or max(self.settings.batch, 20)
        return samplers.NSGAIISampler(seed=seed, population_size=population)

    def _sync(self, history: list[TrialRecord]) -> None:
        """Add finished trials this process has not seen (its own, after a restart, or
        another process's), in number order."""
        for t in history:
            if t.number in self.known or t.number in self.pending or t.state == RUNNING:
                continue
            self._add(t)

    def _add(self, t: TrialRecord) -> None:
        state = self._state(t)
        trial = self.optuna.trial.create_trial(
            state=state,
            values=[float(v) for v in t.values] if state == self._complete else None,
            params={k: v for k, v in t.params.items() if k in self.distributions},
            distributions=self.distributions,
            system_attrs=dict(t.system_attrs),  # with the constraints, if any
        )
        self.study.add_trial(trial)
        self.known.add(t.number)

    @property
    def _complete(self) -> Any:
        return self.optuna.trial.TrialState.COMPLETE

    def _state(self, t: TrialRecord) -> Any:
        states = self.optuna.trial.TrialState
        if t.state != COMPLETE or t.values is None:
            return states.FAIL
        if not all(math.isfinite(v) for v in t.values):
            return states.FAIL
        if self.settings.sampler == "cmaes" and not t.feasible:
            return states.FAIL  # CMA-ES has no constraints: an infeasible point teaches nothing
        return states.COMPLETE

    def propose(self, history: list[TrialRecord], start: int) -> list[Any]:
        self._sync(history)
        count = self.size(start)
        if not count:
            return []
        self.study.sampler = self._sampler(start)
        out = []
        for i in range(count):
            trial = self.study.ask()
            params = {
                name: _suggest(trial, name, dim) for name, dim in self.space.dimensions.items()
            }
            self.pending[start + i] = trial
            frozen = self.study._storage.get_trial(trial._trial_id)
            out.append((params, dict(frozen.system_attrs)))
        return out

    def tell(self, record: TrialRecord) -> None:
        trial = self.pending.pop(record.number, None)
        if trial is None:  # taken back from a dead process: the next sync adds it, in order
            return
        for i, violation in enumerate(record.violations or []):
            trial.set_constraint(f"c{i}", violation)  # optuna's samplers read these
        state = self._state(record)
        if state == self._complete:
            self.study.tell(trial, [float(v) for v in record.values or []])
        else:
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        record.system_attrs = dict(self.study._storage.get_trial(trial._trial_id).system_attrs)
        self.known.add(record.number)


def _distribution(dim: IntRange | FloatRange | Categorical) -> Any:
    from optuna import distributions as d

    if isinstance(dim, IntRange):
        high = dim.low + (dim.high - dim.low) // dim.step * dim.step
        return d.IntDistribution(dim.low, high, log=dim.log, step=dim.step)
    if isinstance(dim, FloatRange):
        return d.FloatDistribution(dim.low, dim.high, log=dim.log, step=dim.step)
    return d.CategoricalDistribution(dim.choices)


def _suggest(trial: Any, name: str, dim: IntRange | FloatRange | Categorical) -> Any:
    if isinstance(dim, IntRange):
        high = dim.low + (dim.high - dim.low) // dim.step * dim.step
        return trial.suggest_int(name, dim.low, high, step=dim.step, log=dim.log)
    if isinstance(dim, FloatRange):
        return trial.suggest_float(name, dim.low, dim.high, step=dim.step, log=dim.log)
    return trial.suggest_categorical(name, dim.choices)


def _proposer(space: SearchSpace) -> _Proposer:
    sampler = space.optimize.sampler
    if sampler == "grid":
        return _GridProposer(space)
    if sampler == "random":
        return _RandomProposer(space, space.optimize.trials)
    return _OptunaProposer(space, space.optimize.trials)


# --- results ------------------------------------------------------------------------------------
@dataclass
class Overfitting:
    """The overfitting statistics of a search, each with a one-line verdict."""

    selected: int | None
    """The trial the PSR and DSR are about (the best, or the Pareto trial best on the first
    objective)."""
    n_trials: int
    """Trials with daily returns (those the statistics use)."""
    periods_per_year: float
    sharpe: float | None = None
    """The selected trial's annualised Sharpe ratio of daily returns."""
    psr: float | None = None
    psr_verdict: str = ""
    dsr: of.DsrResult | None = None
    pbo: of.PboResult | None = None
    notes: list[str] = field(default_factory=list)
    """Why a statistic could not be computed."""

    def to_dict(self) -> dict[str, Any]:
        dsr = self.dsr
        pbo = self.pbo
        return {
            "selected": self.selected,
            "n_trials": self.n_trials,
            "periods_per_year": self.periods_per_year,
            "sharpe": self.sharpe,
            "psr": self.psr,
            "psr_verdict": self.psr_verdict,
            "dsr": None
            if dsr is None
            else {
                "dsr": dsr.dsr,
                "sr": dsr.sr,
                "sr_star": dsr.sr_star,
                "n_trials": dsr.n_trials,
                "sr_variance": dsr.sr_variance,
                "skew": dsr.skew,
                "kurtosis": dsr.kurtosis,
                "n_obs": dsr.n_obs,
                "verdict": dsr.verdict,
            },
            "pbo": None
            if pbo is None
            else {
                "pbo": pbo.pbo,
                "n_partitions": pbo.n_partitions,
                "n_combinations": pbo.n_combinations,
                "n_trials": pbo.n_trials,
                "n_obs": pbo.n_obs,
                "verdict": pbo.verdict,
            },
            "notes": list(self.notes),
        }

    def lines(self) -> list[str]:
        """The verdicts, one line each."""
        out = []
        if self.psr is not None:
            out.append(f"PSR {self.psr:.3f}: {self.psr_verdict}")
        if self.dsr is not None:
            out.append(f"DSR {self.dsr.dsr:.3f}: {self.dsr.verdict}")
        if self.pbo is not None:
            out.append(f"PBO {self.pbo.pbo:.3f}: {self.pbo.verdict}")
        return out + self.notes


def _psr_verdict(psr: float) -> str:
    if psr >= 0.95:
        return f"the Sharpe ratio is above zero with {psr:.0%} confidence (one trial alone)"
    if psr >= 0.5:
        return f"only {psr:.0%} confidence that the Sharpe ratio is above zero: weak evidence"
    return f"{psr:.0%} confidence that the Sharpe ratio is above zero: no evidence of an edge"


def overfitting_report(
    equity: np.ndarray,
    initial_cash: float,
    bucket_ends: pd.DatetimeIndex,
    selected_row: int | None,
    numbers: Sequence[int],
    partitions: int,
) -> Overfitting:
    """Overfitting statistics of trials whose equity at each period's end is ``equity``
    (``(trials, periods)``); ``selected_row`` indexes the selected trial in it."""
    from tradeloom.report.metrics import infer_periods_per_year

    ppy = infer_periods_per_year(bucket_ends.tz_convert(None)) if len(bucket_ends) > 1 else 252.0
    report = Overfitting(selected=None, n_trials=0, periods_per_year=float(ppy))
    if equity.size == 0 or equity.shape[1] < 3:
        report.notes.append("too few periods for overfitting statistics (need 3 or more)")
        return report
    curve = np.concatenate([np.full((equity.shape[0], 1), initial_cash), equity], axis=1)
    usable = np.all(np.isfinite(curve) & (curve > 0), axis=1)
    returns = curve[:, 1:] / curve[:, :-1] - 1.0
    rows = np.flatnonzero(usable)
    report.n_trials = len(rows)
    if len(rows) < len(numbers):
        report.notes.append(
            f"{len(numbers) - len(rows)} of {len(numbers)} trials lost all their equity: they "
            "count in the DSR's number of trials, not in the Sharpe variance or the PBO"
        )
    if selected_row is None or not usable[selected_row]:
        report.notes.append("no selectable trial with positive equity throughout")
        return report
    report.selected = int(numbers[selected_row])
    chosen = returns[selected_row]
    std = chosen.std(ddof=1)
    report.sharpe = float(chosen.mean() / std * math.sqrt(ppy)) if std > 0 else None
    try:
        report.psr = of.probabilistic_sharpe_ratio(chosen)
        report.psr_verdict = _psr_verdict(report.psr)
    except (of.OverfittingInputError, ZeroDivisionError, ValueError) as exc:
        report.notes.append(f"PSR not computed: {exc}")
    trial_sharpes = []
    for r in returns[rows]:
        s = r.std(ddof=1)
        trial_sharpes.append(r.mean() / s if s > 0 else 0.0)
    if len(rows) >= 2:
        try:  # N: every trial run; the variance: those with returns throughout
            report.dsr = of.deflated_sharpe_ratio(
                chosen, trial_sharpes, n_trials=max(len(numbers), len(rows))
            )
        except (of.OverfittingInputError, ZeroDivisionError, ValueError) as exc:
            report.notes.append(f"DSR not computed: {exc}")
        try:
            report.pbo = of.probability_of_backtest_overfitting(returns[rows].T, partitions)
        except (of.OverfittingInputError, ValueError) as exc:
            report.notes.append(f"PBO not computed: {exc}")
    else:
        report.notes.append("DSR and PBO need 2 or more trials")
    return report


@dataclass
class OptimizeResult:
    """What :func:`optimize` found."""

    study: str
    space: SearchSpace
    engine: str
    strategy_id: str
    trials: pd.DataFrame
    """One row per trial: ``number``, ``state``, the params, the objectives (``value_*``),
    every metric, ``feasible``, ``error``, ``seconds``."""
    best: list[int]
    """Single objective: the best feasible trial. Several: the Pareto front (feasible,
    non-dominated), by number."""
    selected: int | None
    overfitting: Overfitting
    equity: pd.DataFrame
    """Equity at the end of each period (rows, UTC) of every complete trial (columns)."""
    seconds: float = 0.0
    evaluated: int = 0
    """Trials evaluated by this call (the rest were already in the study)."""
    executor: str = "inline"
    workers: int = 1
    bars: int = 0

    @property
    def objectives(self) -> list[str]:
        return list(self.space.optimize.objectives)

    @property
    def distinct(self) -> int:
        """Distinct configurations among the trials."""
        names = [n for n in self.space.dimensions if n in self.trials]
        return len(self.trials.drop_duplicates(names)) if names else len(self.trials)

    @property
    def best_params(self) -> dict[str, Any] | None:
        if self.selected is None:
            return None
        row = self.trials.loc[self.trials.number == self.selected].iloc[0]
        return {name: _plain(row[name]) for name in self.space.dimensions}

    def summary(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "strategy": self.strategy_id,
            "engine": self.engine,
            "sampler": self.space.optimize.sampler,
            "objectives": self.objectives,
            "directions": self.space.optimize.resolved_directions,
            "constraints": [str(c) for c in self.space.optimize.constraints],
            "trials": len(self.trials),
            "distinct": self.distinct,
            "complete": int((self.trials.state == COMPLETE).sum()),
            "feasible": int(self.trials.feasible.sum()),
            "evaluated": self.evaluated,
            "seconds": self.seconds,
            "executor": self.executor,
            "workers": self.workers,
            "best": self.best,
            "selected": self.selected,
            "best_params": self.best_params,
            "overfitting": self.overfitting.to_dict(),
        }

    def write(
        self, out_dir: str | Path, *, html: bool = True, stress: Any = None
    ) -> dict[str, Path]:
        """``trials.csv``, ``trials.parquet``, ``equity.parquet``, ``result.json`` and (with
        ``html``) ``report.html`` in ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = {
            "trials.csv": out / "trials.csv",
            "trials.parquet": out / "trials.parquet",
            "equity.parquet": out / "equity.parquet",
        }
        self.trials.to_csv(written["trials.csv"], index=False)
        self.trials.to_parquet(written["trials.parquet"], index=False)
        equity = self.equity.copy()
        equity.columns = [str(c) for c in equity.columns]
        equity.to_parquet(written["equity.parquet"])
        from tradeloom.report.research_html import optimize_report

        return write_summary(self, out, written, stress, optimize_report if html else None)


def write_summary(
    result: Any,
    out: Path,
    written: dict[str, Path],
    stress: Any,
    render: Callable[[Any, Any], str] | None,
) -> dict[str, Path]:
    """``result.json`` (``result.summary()``), ``stress.json`` when a stress report is given,
    and ``report.html`` rendered by ``render(result, stress)``."""
    written["result.json"] = out / "result.json"
    written["result.json"].write_text(
        json.dumps(result.summary(), indent=2, default=_plain, allow_nan=False), encoding="utf-8"
    )
    if stress is not None:  # a StressReport of the selected parameters
        written["stress.json"] = out / "stress.json"
        written["stress.json"].write_text(stress.to_json(), encoding="utf-8")
    if render is not None:
        written["report.html"] = out / "report.html"
        written["report.html"].write_text(render(result, stress), encoding="utf-8")
    return written


def _plain(value: Any) -> Any:
    """JSON for numpy scalars, timestamps and non-finite floats (null)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- the search ---------------------------------------------------------------------------------
def strategy_index(resolved: ResolvedDeployment, space: SearchSpace) -> int:
    """Which of the deployment's strategies the space searches."""
    ids = [c.id or c.spec.name for c in resolved.strategies]
    if space.strategy is None:
        if len(ids) == 1:
            return 0
        raise ConfigError(
            f"the deployment has {len(ids)} strategies ({', '.join(ids)}); say which one to "
            'optimise: strategy = "ID" at the top of the space file',
            path="strategy",
        )
    if space.strategy not in ids:
        raise ConfigError(
            f"the deployment has no strategy {space.strategy!r}; its strategies are "
            f"{', '.join(ids)}",
            path="strategy",
        )
    return ids.index(space.strategy)


def default_study_name(resolved: ResolvedDeployment, space: SearchSpace, data: str) -> str:
    """Named after what it searches: the same command resumes the same study."""
    sid = resolved.strategies[strategy_index(resolved, space)]
    digest = hashlib.sha256(
        f"{resolved.config_hash()}:{space.digest()}:{data}".encode()
    ).hexdigest()
    return f"{sid.id or sid.spec.name}-{space.optimize.sampler}-{digest[:10]}"


def load_bars(resolved: ResolvedDeployment) -> MarketData:
    """The deployment's bars between ``run.start`` and ``run.end``, in memory."""
    from tradeloom.data import MarketData
    from tradeloom.engine.inputs import load_market

    market = load_market(resolved.data.build(), resolved.run.start, resolved.run.end)
    assert isinstance(market, MarketData)
    return market


def optimize(
    resolved: ResolvedDeployment,
    space: SearchSpace,
    *,
    store: Store | None = None,
    study: str | None = None,
    executor: str = "inline",
    workers: int | None = None,
    scheduler: str | None = None,
    engine: str = "auto",
    fresh: bool = False,
    progress: Progress | None = None,
    market: MarketData | None = None,
) -> OptimizeResult:
    """Run (or resume) the search ``space`` describes over ``resolved``'s strategy.

    ``store``: the journal database holding the study (default: a temporary one, so the
    study does not outlive the call). ``study``: its name (default: derived from the
    config, space and data, so that the same call resumes it). ``executor``, ``workers``,
    ``scheduler``: see :mod:`tradeloom.research.executors`. ``engine``: ``auto`` (vector when
    possible), ``vector`` or ``event``. ``fresh``: delete a stored study of that name first.
    ``progress(done, total)`` is called as trials finish. ``market``: bars already loaded
    (walk-forward passes each window).
    """
    from tradeloom.research import executors
    from tradeloom.store import Store

    clock = time.perf_counter  # durations only
    started = clock()
    index = strategy_index(resolved, space)
    market = market if market is not None else load_bars(resolved)
    evaluator = Evaluator(resolved, market, space, strategy_index=index, engine=engine)
    fingerprint = market.fingerprint()
    name = study or default_study_name(resolved, space, fingerprint)
    temporary = None
    if store is None:
        temporary = tempfile.TemporaryDirectory(prefix="tradeloom-study-")
        store = Store(f"sqlite:///{temporary.name}/study.db")
    try:
        studies = StudyStore(store)
        record = studies.open(
            StudyRecord(
                name=name, config_hash=resolved.config_hash(), space_digest=space.digest(),
                data_fingerprint=fingerprint, strategy_id=evaluator.strategy_id,
                engine=evaluator.engine, initial_cash=evaluator.initial_cash,
                config=resolved.to_dict(mask_secrets=True), space=space.model_dump(mode="json"),
                bucket_ends=[int(x) for x in evaluator.buckets.ends.as_unit("ns").asi8],
            ),
            fresh=fresh,
        )  # fmt: skip
        proposer = _proposer(space)
        total = proposer.target
        stored = [t for t in studies.trials(name) if t.state != RUNNING]  # one read
        done = len(stored)
        if progress:
            progress(done, total)
        pool = executors.make(executor, evaluator, workers=workers, scheduler=scheduler)
        token = uuid.uuid4().hex[:8]
        evaluated = 0
        seen = {_key(t.params): t for t in reversed(stored)}  # the first of each
        try:
            while True:
                claimed = studies.claim(name, proposer.propose, token=token)
                if not claimed:
                    break
                base = done
                fresh_trials = [t for t in claimed if _key(t.params) not in seen]
                outcomes = _run_claimed(
                    pool, fresh_trials, lambda n, base=base: progress and progress(base + n, total)
                )
                for t in claimed:  # a configuration already run is not run again
                    if t.number not in outcomes:
                        outcomes[t.number] = _reuse(seen[_key(t.params)], t)
                finished = [_finish(t, outcomes[t.number], space) for t in claimed]
                for t in finished:
                    seen.setdefault(_key(t.params), t)
                    proposer.tell(t)
                studies.finish(name, finished)
                done += len(finished)
                evaluated += len(finished)
        finally:
            pool.close()
        result = _result(
            record, space, studies.trials(name), evaluator, clock() - started, evaluated,
            executor, pool.workers,
        )  # fmt: skip
        studies.record_summary(
            name,
            {"trials": len(result.trials), "selected": result.selected,
             "best_params": result.best_params,
             "overfitting": {k: v for k, v in result.overfitting.to_dict().items()
                             if k in ("psr", "selected", "n_trials")}
             | {"dsr": result.overfitting.dsr.dsr if result.overfitting.dsr else None,
                "pbo": result.overfitting.pbo.pbo if result.overfitting.pbo else None}},
        )  # fmt: skip
        return result
    finally:
        if temporary is not None:
            store.close()
            temporary.cleanup()


def _key(params: dict[str, Any]) -> str:
    """A configuration's identity (its params, canonical JSON)."""
    return json.dumps(params, sort_keys=True, default=str)


def _reuse(earlier: TrialRecord, trial: TrialRecord) -> TrialOutcome:
    """The outcome of ``trial`` copied from an earlier trial with the same params."""
    return TrialOutcome(
        number=trial.number,
        params=dict(trial.params),
        metrics=dict(earlier.metrics or {}),
        equity=earlier.equity if earlier.equity is not None else np.empty(0),
        error=earlier.error,
        seconds=0.0,
    )


def _run_claimed(
    pool: Any, claimed: list[TrialRecord], progress: Callable[[int], Any]
) -> dict[int, TrialOutcome]:
    """Evaluate claimed trials in chunks spread over the executor's workers."""
    if not claimed:
        return {}
    work = [(t.number, t.params) for t in claimed]
    parts = max(1, min(len(work), pool.workers * 2 if pool.workers > 1 else 1))
    size = math.ceil(len(work) / parts)
    chunks = [work[i : i + size] for i in range(0, len(work), size)]
    outcomes: dict[int, TrialOutcome] = {}
    for batch in pool.run(chunks):
        for outcome in batch:
            outcomes[outcome.number] = outcome
        progress(len(outcomes))
    return outcomes


def _finish(claimed: TrialRecord, outcome: TrialOutcome, space: SearchSpace) -> TrialRecord:
    settings = space.optimize
    t = TrialRecord(
        number=claimed.number,
        state=COMPLETE if outcome.ok else FAILED,
        params=claimed.params,
        system_attrs=claimed.system_attrs,
        owner=claimed.owner,
        claimed_at=claimed.claimed_at,
        seconds=outcome.seconds,
        error=outcome.error,
    )
    if outcome.ok:
        t.metrics = dict(outcome.metrics)
        t.values = [_value(outcome.metrics.get(o)) for o in settings.objectives]
        t.violations = [c.violation(outcome.metrics.get(c.metric)) for c in settings.constraints]
        t.equity = outcome.equity
    else:
        logger.debug("trial {n} failed: {e}", n=claimed.number, e=outcome.error)
    return t


def _value(value: Any) -> float:
    return math.nan if value is None else float(value)


def _result(
    record: StudyRecord,
    space: SearchSpace,
    trials: list[TrialRecord],
    evaluator: Evaluator,
    seconds: float,
    evaluated: int,
    executor: str,
    workers: int,
) -> OptimizeResult:
    settings = space.optimize
    directions = settings.resolved_directions
    rows = []
    for t in trials:
        row: dict[str, Any] = {"number": t.number, "state": t.state}
        for name in space.dimensions:
            row[name] = t.params.get(name)
        for name, v in zip(settings.objectives, t.values or [None] * len(directions), strict=True):
            row[f"value_{name}"] = np.nan if v is None else v
        for key, v in (t.metrics or {}).items():
            row[key] = np.nan if v is None else v
        row["feasible"] = bool(
            t.feasible and t.values is not None and all(math.isfinite(v) for v in t.values)
        )
        row["error"] = t.error
        row["seconds"] = t.seconds
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["number", "state", "feasible", "error", "seconds"])
    best = _best(frame, settings.objectives, directions)
    if len(best) > 1 and not frame.empty:  # the front lists each configuration once
        params_of = {t.number: _key(t.params) for t in trials}
        firsts: dict[str, int] = {}
        for number in sorted(best):
            firsts.setdefault(params_of[number], number)
        best = sorted(firsts.values())
    selected = best[0] if best else None
    if len(settings.objectives) > 1 and best:
        first = f"value_{settings.objectives[0]}"
        front = frame[frame.number.isin(best)]
        ascending = directions[0] == "minimize"
        selected = int(
            front.sort_values([first, "number"], ascending=[ascending, True]).iloc[0].number
        )

    with_equity = [t for t in trials if t.state == COMPLETE and t.equity is not None]
    ends = pd.DatetimeIndex(pd.to_datetime(record.bucket_ends, utc=True))
    # Each configuration once: a sampler proposing the same params again adds no trial.
    distinct: dict[str, TrialRecord] = {}
    for t in with_equity:
        distinct.setdefault(_key(t.params), t)
    kept = list(distinct.values())
    matrix = np.vstack([t.equity for t in kept]) if kept else np.empty((0, len(ends)))
    numbers = [t.number for t in kept]
    chosen = next((t for t in trials if t.number == selected), None)
    selected_row = (
        numbers.index(distinct[_key(chosen.params)].number)
        if chosen is not None and _key(chosen.params) in distinct
        else None
    )
    report = overfitting_report(
        matrix, evaluator.initial_cash, ends, selected_row, numbers, settings.partitions
    )
    if selected_row is not None:
        report.selected = selected
    repeats = len(with_equity) - len(kept)
    if repeats:
        report.notes.append(
            f"{repeats} trials repeated an earlier configuration: each configuration counts once"
        )
    equity = pd.DataFrame(matrix.T, index=ends, columns=numbers)
    equity.index.name = "ts"
    return OptimizeResult(
        study=record.name,
        space=space,
        engine=evaluator.engine,
        strategy_id=evaluator.strategy_id,
        trials=frame,
        best=best,
        selected=selected,
        overfitting=report,
        equity=equity,
        seconds=seconds,
        evaluated=evaluated,
        executor=executor,
        workers=workers,
        bars=len(evaluator.ts),
    )


def _best(frame: pd.DataFrame, objectives: list[str], directions: list[str]) -> list[int]:
    """The best feasible trial (one objective) or the Pareto front (several), by number."""
    if frame.empty or "feasible" not in frame:
        return []
    ok = frame[frame.feasible]
    if ok.empty:
        return []
    signs = np.array([1.0 if d == "maximize" else -1.0 for d in directions])
    values = ok[[f"value_{o}" for o in objectives]].to_numpy(dtype=float) * signs
    numbers = ok.number.to_numpy()
    if len(objectives) == 1:
        top = values[:, 0].max()
        return [int(numbers[np.flatnonzero(values[:, 0] == top)[0]])]
    front = []
    for i in range(len(values)):
        dominated = np.any(np.all(values >= values[i], axis=1) & np.any(values > values[i], axis=1))
        if not dominated:
            front.append(int(numbers[i]))
    return front
