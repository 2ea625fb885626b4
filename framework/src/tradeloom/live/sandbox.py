"""The strategy sandbox: a strategy in its own process, talking to the runner only through
:mod:`tradeloom.live.protocol`.

:class:`SandboxedStrategy` is a :class:`~tradeloom.strategy.Strategy` the engine calls like any
other. It starts ``python -m tradeloom.live.sandbox_child`` with a scrubbed environment (an
allowlist: no credential of the runner's environment reaches the child), which isolates itself
(network namespace, resource limits, the unprivileged ``nobody`` user when the runner is root;
:attr:`SandboxedStrategy.isolation` says what took effect) and only then imports the strategy.
Each callback is forwarded with the bars the child has not seen yet; the child's strategy works
on the framework's own :class:`~tradeloom.strategy.Context`, whose reads of the account are
answered here from the real Context and whose orders, cancels and replaces are applied here
through the real Context, so they pass the runner's risk gate and are stamped (strategy id,
client order id) exactly as an in-process strategy's.

A callback that raises, runs past :attr:`SandboxLimits.callback_deadline_s` (the child is killed
at the deadline), exhausts its memory or CPU limit, or breaks the protocol makes the strategy
**FAULTED**: the child is gone, later callbacks do nothing, :attr:`SandboxedStrategy.fault`
says why and :attr:`SandboxedStrategy.on_fault` is called. The runner (or the engine, in a
backtest) keeps going. What a fault does to the strategy's orders and positions is the
runner's policy, set through ``on_fault``; in a backtest, when nothing is set, the fault is
recorded and the strategy is no longer called (its working orders stay with the broker).

:func:`sandboxed` wraps the strategies of a run, e.g. to prove that a strategy behaves the
same in the sandbox as in process::

    result = tradeloom.run_backtest(market, sandboxed([("sma", SmaCrossover())]))

See ``docs/sandbox.md``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import pickle
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from time import perf_counter
from typing import Any

import numpy as np
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field

from tradeloom.components import Capabilities, Mode
from tradeloom.errors import ConfigError, RunError, TradeloomError
from tradeloom.live import protocol
from tradeloom.live.protocol import ProtocolError
from tradeloom.model import Bar, Fill, OrderUpdate
from tradeloom.strategy import Context, Strategy
from tradeloom.strategy.context import FIELDS

__all__ = [
    "SandboxLimits",
    "SandboxState",
    "SandboxedStrategy",
    "child_environment",
    "sandboxed",
]

log = logger.bind(component="tradeloom.live.sandbox")

NOBODY = (65534, 65534)
"""The uid and gid a child started by root drops to (``nobody``/``nogroup`` on Linux)."""

ENV_PASSED = ("PATH", "LANG", "TZ", "PYTHONHASHSEED")
"""The runner's environment variables a child gets (with every ``LC_*``); nothing else."""

ENV_SET = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_MAX_THREADS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONNOUSERSITE": "1",
}
"""Set for every child: one-threaded numeric libraries (the child may start no threads), no
bytecode written, no user site directory."""

_TARGET = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class SandboxLimits(BaseModel):
    """What a sandboxed strategy's process may use."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    memory_mb: int | None = Field(default=1024, ge=128)
    """Address space of the child (``RLIMIT_AS``), in MB; ``None``: unlimited. Python, numpy
    and pandas map about 350 MB of it before the strategy is imported."""
    cpu_seconds: float | None = Field(default=None, gt=0)
    """CPU time the strategy may use over the child's life, after start-up (``RLIMIT_CPU``,
    whole seconds, rounded up); ``None``: unlimited (the callback deadline still applies)."""
    callback_deadline_s: float = Field(default=2.0, gt=0)
    """Wall-clock seconds one callback may take, the runner's answers to its reads and orders
    included; past it the child is killed and the strategy FAULTED."""
    startup_timeout_s: float = Field(default=60.0, gt=0)
    """Wall-clock seconds the child may take to isolate itself and import the strategy."""
    file_mb: int = Field(default=16, ge=1)
    """Largest file the child may write (``RLIMIT_FSIZE``) and the size of its private
    working directory."""
    spin_us: int = Field(default=0, ge=0, le=100_000)
    """Microseconds each side busy-waits for the other's next message before blocking (0:
    never). On an idle machine with a CPU for each process, 200 roughly halves a backtest's
    time in the sandbox (a blocking wait's wake-up costs tens of microseconds); on a busy one
    the spinning processes take the CPU from each other and it is slower (docs/sandbox.md)."""
    max_log_lines: int = Field(default=1_000, ge=0)
    """Log lines kept per callback; further lines are counted and dropped."""


class SandboxState(StrEnum):
    RUNNING = "running"
    """The child is up and the strategy is called."""
    FAULTED = "faulted"
    """The strategy raised, hung, ran out of memory or CPU, or broke the protocol: the child
    is gone and the strategy is no longer called."""
    STOPPED = "stopped"
    """``on_stop`` returned (or :meth:`SandboxedStrategy.close` was called) and the child
    exited; the next ``on_start`` starts a fresh one."""


class _Timeout(Exception):
    pass


class _ChildGone(Exception):
    pass


def child_environment(workdir: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a child: the allowlisted variables of ``environ`` (the
    runner's by default), :data:`ENV_SET`, and ``HOME``/``TMPDIR`` set to ``workdir``."""
    source = os.environ if environ is None else environ
    env = {k: v for k, v in source.items() if k in ENV_PASSED or k.startswith("LC_")}
    env.update(ENV_SET)
    env["HOME"] = env["TMPDIR"] = workdir
    return env


class _Channel:
    """The parent's end of the pipes: non-blocking, every wait bounded by a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes], spin_s: float) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.spin_s = spin_s
        self.wfd = proc.stdin.fileno()
        self.rfd = proc.stdout.fileno()
        os.set_blocking(self.wfd, False)
        os.set_blocking(self.rfd, False)
        self.reader = protocol.FrameReader(protocol.MAX_CHILD_FRAME)
        self._in = select.poll()
        self._in.register(self.rfd, select.POLLIN)
        self._out = select.poll()
        self._out.register(self.wfd, select.POLLOUT)

    def send(self, payload: bytes, deadline: float) -> None:
        view = memoryview(protocol.frame(payload))
        while True:
            try:
                n = os.write(self.wfd, view)
            except BlockingIOError:
                n = 0
            except OSError:  # broken pipe: the child is gone
                raise _ChildGone from None
            if n == len(view):
                return
            view = view[n:]
            self._wait(self._out, deadline)

    def recv(self, deadline: float) -> dict[str, Any]:
        reader = self.reader
        while True:
            payload = reader.next()
            if payload is not None:
                return protocol.parse(payload)
            try:
                chunk = self._spin() if self.spin_s else None
                if chunk is None:
                    self._wait(self._in, deadline)
                    chunk = os.read(self.rfd, 1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                raise _ChildGone from None
            if not chunk:
                raise _ChildGone
            reader.feed(chunk)

    def _spin(self) -> bytes | None:
        """Busy-wait up to ``spin_s`` for the child's answer: waking up from a blocking wait
        costs tens of microseconds, more than most callbacks take."""
        rfd = self.rfd
        stop = perf_counter() + self.spin_s
        while perf_counter() < stop:
            try:
                return os.read(rfd, 1 << 16)
            except BlockingIOError:
                pass
        return None

    @staticmethod
    def _wait(poller: select.poll, deadline: float) -> None:
        remaining = deadline - perf_counter()
        if remaining <= 0:
            raise _Timeout
        poller.poll(max(1, math.ceil(remaining * 1000)))


def _reap(proc: subprocess.Popen[bytes], stderr: Any, workdir: str) -> None:
    """Kill the child's process group, wait for it, release its files (also run by the
    finalizer when a SandboxedStrategy is garbage collected or the interpreter exits)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout, stderr):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    shutil.rmtree(workdir, ignore_errors=True)


class SandboxedStrategy(Strategy):
    """A strategy run in its own isolated process (see the module docstring).

    ``strategy``: the strategy class, an instance (its class and params are used: state set
    outside its params does not travel), or ``"package.module:ClassName"``, which the runner
    never imports itself. ``params``: the params as a mapping (validated in the child by the
    class's ``Params``). ``limits`` or keyword limits: :class:`SandboxLimits`.

    The child starts when the object is built (``start=False``: call :meth:`start` before
    the strategy is used): the engine decides which callbacks to call from the class, so the
    child has to report which ones the strategy overrides first.
    """

    def __init__(
        self,
        strategy: type[Strategy] | Strategy | str,
        params: Mapping[str, Any] | None = None,
        *,
        limits: SandboxLimits | None = None,
        strategy_id: str = "",
        start: bool = True,
        **limit_values: Any,
    ) -> None:
        super().__init__()
        if limits is not None and limit_values:
            raise TypeError("pass either limits=SandboxLimits(...) or limit keywords, not both")
        self.target, self._params_json = _target(strategy, params)
        self.limits = limits if limits is not None else SandboxLimits(**limit_values)
        self.strategy_id = strategy_id
        """The id the child's Context starts with (the engine's own id replaces it at
        ``on_start``)."""
        self.on_fault: Callable[[str], None] | None = None
        """Called with the reason when the strategy faults: the runner's fault policy (halt its
        scope, cancel its orders, flatten). ``None`` (a backtest's default): record only."""
        self.fault: str | None = None
        """Why the strategy faulted, or ``None``."""
        self.fault_traceback = ""
        """The child's traceback when it raised."""
        self.logs: deque[tuple[str, str]] = deque(maxlen=10_000)
        """The latest ``(level, message)`` log lines of the strategy (also re-emitted on the
        runner's logger, bound to the strategy id)."""
        self.callbacks: frozenset[str] = frozenset()
        """The callbacks the strategy overrides, as its child reported them."""
        self._state = SandboxState.STOPPED
        self._isolation: dict[str, Any] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._channel: _Channel | None = None
        self._stderr: Any = None
        self._workdir = ""
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._symbols: list[str] = []
        self._counts: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._synced_ts: int | None = None
        self._lines = 0
        if start:
            self.start()

    # --- public state -------------------------------------------------------------------------
    @property
    def state(self) -> SandboxState:
        return self._state

    @property
    def isolation(self) -> dict[str, Any]:
        """What the child's isolation achieved, in plain words (a copy): ``env``, ``network``
        (``"namespace"`` or ``"unavailable: <why>"``), ``user`` (``"nobody"`` or
        ``"unchanged: <why>"``), ``filesystem``, ``processes``, the limits, and what the
        runner itself saw of the child in ``/proc`` (``runner_check``)."""
        return dict(self._isolation)

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def __repr__(self) -> str:
        return f"SandboxedStrategy({self.target!r}, state={self._state.value})"

    # --- the child's life ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the child and wait until the strategy is loaded (:class:`RunError` if it
        cannot be)."""
        self._spawn()
        self._await_ready()

    def close(self) -> None:
        """Stop the child (asking first, then killing it). A FAULTED strategy stays FAULTED."""
        proc = self._proc
        if proc is not None and proc.poll() is None and self._channel is not None:
            try:
                deadline = perf_counter() + 1.0
                self._channel.send(pickle.dumps(("exit",), protocol.PICKLE_PROTOCOL), deadline)
                proc.wait(timeout=1.0)
            except (_Timeout, _ChildGone, subprocess.TimeoutExpired):
                pass
        self._release()
        if self._state is SandboxState.RUNNING:
            self._state = SandboxState.STOPPED

    def _spawn(self) -> None:
        if self._proc is not None:
            self._release()
        self._workdir = tempfile.mkdtemp(prefix="tradeloom-sandbox-")
        root = hasattr(os, "geteuid") and os.geteuid() == 0
        if root:
            os.chown(self._workdir, *NOBODY)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _reap
        self._proc = subprocess.Popen(
            [sys.executable, "-s", "-P", "-m", "tradeloom.live.sandbox_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=child_environment(self._workdir),
            cwd=self._workdir,
            close_fds=True,
            start_new_session=True,
            bufsize=0,
        )
        self._channel = _Channel(self._proc, self.limits.spin_us / 1e6)
        self._finalizer = weakref.finalize(self, _reap, self._proc, self._stderr, self._workdir)
        limits = self.limits
        handshake = {
            "version": 1,
            "sys_path": [os.path.abspath(p) if p else os.getcwd() for p in sys.path],
            "target": self.target,
            "params": self._params_json,
            "strategy_id": self.strategy_id,
            "memory_mb": limits.memory_mb,
            "cpu_seconds": limits.cpu_seconds,
            "file_mb": limits.file_mb,
            "spin_s": limits.spin_us / 1e6,
            "workdir": self._workdir,
            "user": NOBODY,
        }
        with contextlib.suppress(_Timeout, _ChildGone):  # _await_ready reports it
            self._channel.send(
                pickle.dumps(handshake, protocol.PICKLE_PROTOCOL),
                perf_counter() + limits.startup_timeout_s,
            )

    def _await_ready(self) -> None:
        assert self._channel is not None and self._proc is not None
        deadline = perf_counter() + self.limits.startup_timeout_s
        self._isolation = {}
        try:
            isolated = self._channel.recv(deadline)
            if isolated["t"] == "isolated":
                self._isolation = self._check(self._proc.pid, isolated["isolation"])
                ready = self._channel.recv(deadline)
            else:
                ready = isolated
            if ready["t"] == "error":
                raise RunError(
                    f"sandboxed strategy {self.target!r} could not start: "
                    f"{ready['type']}: {ready['message']}"
                )
            if ready["t"] != "ready" or not self._isolation:
                raise ProtocolError(f"expected isolated then ready, got {ready['t']}")
        except (_Timeout, _ChildGone, ProtocolError) as exc:  # ProtocolError is a RunError
            why = {
                _Timeout: f"no answer within {self.limits.startup_timeout_s:g} s",
                _ChildGone: f"the child {self._exit_status()}",
            }.get(type(exc), f"protocol violation: {exc}")
            tail = self._stderr_tail()
            self._release()
            raise RunError(
                f"sandboxed strategy {self.target!r} could not start: {why}"
                + (f"; its last output: {tail}" if tail else "")
            ) from None
        except RunError:
            self._release()
            raise
        caps = ready["capabilities"]
        self.capabilities = Capabilities(  # type: ignore[misc]
            modes=frozenset(Mode(m) for m in caps["modes"]),
            multi_symbol=caps["multi_symbol"],
            short_selling=caps["short_selling"],
        )
        self.callbacks = frozenset(ready["callbacks"])
        self.__class__ = _variant(self.callbacks)
        self._state = SandboxState.RUNNING

    @staticmethod
    def _check(pid: int, report: dict[str, Any]) -> dict[str, Any]:
        """The child's ``report`` with what the runner sees of the child in ``/proc`` (its user,
        whether its network namespace is another than the runner's) in ``runner_check``;
        where they disagree, the runner's view wins."""
        report = dict(report)
        seen: list[str] = []
        try:
            with open(f"/proc/{pid}/status") as status:
                uids = next(line for line in status if line.startswith("Uid:")).split()[1:]
            uid = int(uids[1])
            seen.append(f"uid {uid}")
            if uid == 0 and not str(report.get("user", "")).startswith("unchanged"):
                report["user"] = "unchanged: the runner sees the child as root"
        except (OSError, StopIteration, ValueError, IndexError):
            seen.append("uid not visible")
        try:
            own = os.stat("/proc/self/ns/net").st_ino != os.stat(f"/proc/{pid}/ns/net").st_ino
            seen.append("own network namespace" if own else "the runner's network namespace")
            if not own and not str(report.get("network", "")).startswith("unavailable"):
                report["network"] = "unavailable: the child is in the runner's network namespace"
        except OSError:
            seen.append("network namespace not visible")
        report["runner_check"] = "; ".join(seen)
        return report

    def _release(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _reap(proc, self._stderr, self._workdir)
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        self._channel = None
        self._stderr = None

    def _exit_status(self) -> str:
        proc = self._proc
        if proc is None:
            return "is gone"
        try:
            code = proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "stopped answering"
        if code >= 0:
            return f"exited with code {code}"
        sig = -code
        if sig == getattr(signal, "SIGXCPU", -1):
            return f"exceeded its CPU time limit of {self.limits.cpu_seconds:g} s (SIGXCPU)"
        try:
            return f"was killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"was killed by signal {sig}"

    def _stderr_tail(self, size: int = 600) -> str:
        stream = self._stderr
        if stream is None:
            return ""
        try:
            stream.flush()
            end = stream.seek(0, os.SEEK_END)
            stream.seek(max(0, end - size))
            text = stream.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return " | ".join(line for line in text.splitlines()[-3:] if line.strip())

    # --- faults -------------------------------------------------------------------------------
    def _fault(self, reason: str) -> None:
        if self._state is SandboxState.FAULTED:
            return
        self._state = SandboxState.FAULTED
        self.fault = reason
        self._release()
        log.warning("sandboxed strategy {target} FAULTED: {reason}", target=self.target,
                    reason=reason)  # fmt: skip
        if self.on_fault is not None:
            self.on_fault(reason)

    # --- callbacks (the engine calls the ones the strategy overrides, see _variant) -------------
    def on_start(self, ctx: Context) -> None:
        if self._state is SandboxState.FAULTED:
            return
        if not self.callbacks:
            raise RunError(
                f"sandboxed strategy {self.target!r} was never started: call start() (or build "
                "it with start=True, or through sandboxed()) before handing it to an engine"
            )
        if self._state is SandboxState.STOPPED:  # a new run: a fresh child
            self.start()
        self._symbols = list(ctx.symbols)
        self._counts = dict.fromkeys(self._symbols, 0)
        self._last = {}
        self._synced_ts = None
        self._call(ctx, "on_start", (ctx.strategy_id, self._symbols), None)

    def on_stop(self, ctx: Context) -> None:
        if self._state is not SandboxState.RUNNING:
            return
        if "on_stop" in self.callbacks:
            self._call(ctx, "on_stop", None, None)
        if self._state is SandboxState.RUNNING:
            self.close()

    def _on_bar(self, ctx: Context, bar: Bar) -> None:
        if self._state is SandboxState.RUNNING:
            self._call(ctx, "on_bar", tuple(bar), {bar.symbol: bar})

    def _on_bars(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        if self._state is SandboxState.RUNNING:
            self._call(ctx, "on_bars", {s: tuple(b) for s, b in bars.items()}, bars)

    def _on_fill(self, ctx: Context, fill: Fill) -> None:
        if self._state is SandboxState.RUNNING:
            self._call(ctx, "on_fill", fill, None)

    def _on_order(self, ctx: Context, update: OrderUpdate) -> None:
        if self._state is SandboxState.RUNNING:
            self._call(ctx, "on_order", update, None)

    # --- one callback ---------------------------------------------------------------------------
    def _call(self, ctx: Context, name: str, arg: Any, delivered: Mapping[str, Bar] | None) -> None:
        channel = self._channel
        assert channel is not None
        deadline_s = self.limits.callback_deadline_s
        try:
            ops = self._sync(ctx, delivered)
            payload = pickle.dumps(("call", name, ctx.ts, ops, arg), protocol.PICKLE_PROTOCOL)
            deadline = perf_counter() + deadline_s
            channel.send(payload, deadline)
            self._lines = 0
            while True:
                message = channel.recv(deadline)
                kind = message["t"]
                if kind == "done":
                    return
                if kind == "log":
                    self._log(ctx, message)
                elif kind == "error":
                    self.fault_traceback = message["traceback"]
                    if message["type"] == "MemoryError":
                        self._fault(
                            f"{name} ran out of memory (limit {self.limits.memory_mb} MB): "
                            f"MemoryError: {message['message']}"
                        )
                    else:
                        self._fault(f"{name} raised {message['type']}: {message['message']}")
                    return
                elif kind in protocol.ONE_WAY:
                    raise ProtocolError(f"unexpected {kind} message during a callback")
                else:
                    channel.send(self._answer(ctx, name, message), deadline)
        except _Timeout:
            self._fault(f"{name} did not return within its deadline of {deadline_s:g} s; "
                        "the child was killed")  # fmt: skip
        except _ChildGone:
            tail = self._stderr_tail()
            self._fault(f"the child {self._exit_status()} during {name}"
                        + (f"; its last output: {tail}" if tail else ""))  # fmt: skip
        except ProtocolError as exc:
            self._fault(f"protocol violation during {name}: {exc}")

    def _log(self, ctx: Context, message: dict[str, Any]) -> None:
        self._lines += 1
        limit = self.limits.max_log_lines
        if self._lines > limit:
            if self._lines == limit + 1:
                self.logs.append(("WARNING", f"more than {limit} log lines in one callback: "
                                             "dropping the rest"))  # fmt: skip
            return
        level, text = message["level"], message["message"]
        self.logs.append((level, text))
        ctx.log.log(level, text)

    def _answer(self, ctx: Context, name: str, message: dict[str, Any]) -> bytes:
        """The reply to a read or an intent, applied through the runner's own Context."""
        kind = message["t"]
        try:
            if kind in _READS:
                reply: tuple[Any, ...] = ("ok", _READS[kind](ctx, message), None)
            else:
                value = _INTENTS[kind](ctx, message)
                reply = ("ok", value, _account(ctx))
        except TradeloomError as exc:  # what an in-process strategy would have caught
            reply = ("err", type(exc).__name__, str(exc))
        except Exception as exc:  # never let a child's message crash the runner
            raise ProtocolError(
                f"the runner could not apply a {kind} message from {name}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return pickle.dumps(reply, protocol.PICKLE_PROTOCOL)

    # --- keeping the child's bars current ---------------------------------------------------------
    def _sync(self, ctx: Context, delivered: Mapping[str, Bar] | None) -> list[tuple[Any, ...]]:
        """The bars the child has not seen: at a new timestamp every symbol is checked; at the
        same timestamp only the symbols of the bars being delivered. A bar being delivered
        travels once, as the callback's argument. A symbol whose earlier bars changed (a split
        rescales them) is sent afresh."""
        ts = ctx.ts
        counts = self._counts
        if ts == self._synced_ts and (
            delivered is None or all(counts[s] == ctx.bar_count(s) for s in delivered)
        ):
            return []
        self._synced_ts = ts
        ops: list[tuple[Any, ...]] = []
        last = self._last
        read = self._read
        for s in self._symbols:
            have = counts[s]
            now = ctx.bar_count(s)
            if now == have:
                continue
            new = now - have
            block = read(ctx, s, new + 1 if have else new)
            if have and not (block.shape[1] == new + 1 and _same(block[3, 0], last[s])):
                block = read(ctx, s, now)  # earlier bars changed: all of them again
                ops.append(("r", s, now, _raw(block)))
            elif new == 1 and delivered is not None and s in delivered:
                ops.append(("a", s))
            else:
                ops.append(("x", s, _raw(block[:, 1:] if have else block)))
            last[s] = float(block[3, -1])
            counts[s] = now
        return ops

    @staticmethod
    def _read(ctx: Context, symbol: str, n: int) -> np.ndarray:
        """The last ``n`` bars of ``symbol`` (rows open, high, low, close, volume; fewer if the
        run no longer keeps them): one call to the engine's ``bars_of``, the view its risk
        rules read, or else five ``ctx.history`` calls."""
        bars_of = getattr(getattr(ctx, "_engine", None), "bars_of", None)
        if bars_of is not None:
            return bars_of(symbol, n)  # type: ignore[no-any-return]
        while True:
            try:
                return np.array([ctx.history(symbol, n, f) for f in FIELDS])
            except RunError:  # a streamed run keeps fewer: the latest it keeps
                if n <= 1:
                    raise
                n = (n + 1) // 2


def _raw(block: np.ndarray) -> tuple[int, bytes]:
    """A block of bars as its column count and float64 bytes: pickled many times faster
    than a small array."""
    return block.shape[1], block.astype(np.float64, order="C", copy=False).tobytes()


def _same(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)


# --- what the runner answers ------------------------------------------------------------------
def _account(ctx: Context) -> tuple[Any, ...]:
    return (ctx.cash, ctx.equity, ctx.buying_power, ctx.account(), ctx.positions(),
            ctx.open_orders())  # fmt: skip


_READS: dict[str, Callable[[Context, dict[str, Any]], Any]] = {
    "state": lambda ctx, m: _account(ctx),
    "position": lambda ctx, m: ctx.position(m["symbol"]),
    "get_order": lambda ctx, m: ctx.get_order(m["id"]),
    "fx": lambda ctx, m: {s: ctx.fx_rate(s) for s in ctx.symbols},
    "room": lambda ctx, m: ctx.max_order_size(m["symbol"], m["side"]),
}

_INTENTS: dict[str, Callable[[Context, dict[str, Any]], Any]] = {
    "order": lambda ctx, m: ctx.order(
        m["symbol"], m["quantity"], limit=m["limit"], stop=m["stop"],
        trail_amount=m["trail_amount"], trail_percent=m["trail_percent"], tif=m["tif"],
        at=m["at"],
    ),
    "cancel": lambda ctx, m: ctx.cancel(m["id"]),
    "replace": lambda ctx, m: ctx.replace(
        m["id"], quantity=m["quantity"], limit=m["limit"], stop=m["stop"]
    ),
    "oco": lambda ctx, m: ctx.oco(
        m["symbol"], m["quantity"], limit=m["limit"], stop=m["stop"], tif=m["tif"]
    ),
    "bracket": lambda ctx, m: ctx.bracket(
        m["symbol"], m["quantity"], take_profit=m["take_profit"], stop_loss=m["stop_loss"],
        limit=m["limit"], tif=m["tif"],
    ),
}  # fmt: skip
"""Every intent a child may send, applied through the runner's Context (which stamps the
strategy id and the client order id and passes the risk gate); nothing else reaches it."""


@functools.cache
def _variant(callbacks: frozenset[str]) -> type[SandboxedStrategy]:
    """A SandboxedStrategy class overriding exactly the callbacks the strategy overrides, so
    the engine calls (and orders) them as it would call the strategy in process."""
    namespace: dict[str, Any] = {"__module__": __name__, "__qualname__": "SandboxedStrategy"}
    if "on_bars" in callbacks:
        namespace["on_bars"] = SandboxedStrategy._on_bars
    elif "on_bar" in callbacks:
        namespace["on_bar"] = SandboxedStrategy._on_bar
    if "on_fill" in callbacks:
        namespace["on_fill"] = SandboxedStrategy._on_fill
    if "on_order" in callbacks:
        namespace["on_order"] = SandboxedStrategy._on_order
    return type("SandboxedStrategy", (SandboxedStrategy,), namespace)


def _target(strategy: type[Strategy] | Strategy | str, params: Any) -> tuple[str, str]:
    """``module:qualname`` and the params as JSON."""
    if isinstance(strategy, SandboxedStrategy):
        raise TypeError("the strategy is already sandboxed")
    if isinstance(strategy, Strategy):
        if params is not None:
            raise TypeError("pass params with a strategy class, not with an instance")
        params = strategy.params
        strategy = type(strategy)
    if isinstance(strategy, type) and issubclass(strategy, Strategy):
        module, qualname = strategy.__module__, strategy.__qualname__
        if "<locals>" in qualname or module == "__main__":
            raise ConfigError(
                f"strategy class {qualname} (module {module}) cannot be imported by name in "
                "another process: define it at the top level of an importable module"
            )
        target = f"{module}:{qualname}"
    elif isinstance(strategy, str):
        target = strategy
    else:
        raise TypeError(
            f"expected a Strategy class, instance or 'module:qualname', got {strategy!r}"
        )
    if not _TARGET.match(target):
        raise ConfigError(f"strategy {target!r}: expected 'package.module:ClassName'")
    if isinstance(params, BaseModel):
        params = params.model_dump(mode="json")
    try:
        params_json = json.dumps(dict(params or {}), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"params of {target} must be plain JSON values: {exc}") from None
    return target, params_json


def sandboxed(
    strategies: Strategy | Sequence[tuple[str, Strategy]],
    *,
    limits: SandboxLimits | None = None,
    **limit_values: Any,
) -> list[tuple[str, SandboxedStrategy]]:
    """The ``(id, strategy)`` pairs of a run with every strategy sandboxed (already sandboxed
    ones are kept): pass the result to :func:`tradeloom.run_backtest` to run the strategies
    in their own processes. The children start concurrently."""
    if isinstance(strategies, Strategy):
        strategies = [(type(strategies).__name__.lower(), strategies)]
    limits = limits if limits is not None else SandboxLimits(**limit_values)
    pairs = [
        (sid, s if isinstance(s, SandboxedStrategy)
         else SandboxedStrategy(s, limits=limits, strategy_id=sid, start=False))
        for sid, s in strategies
    ]  # fmt: skip
    fresh = [s for _, s in pairs if s.state is SandboxState.STOPPED and s.pid is None]
    try:
        for s in fresh:
            s._spawn()
        for s in fresh:
            s._await_ready()
    except BaseException:
        for s in fresh:
            s.close()
        raise
    return pairs
