"""Clocks for streamed sessions: what time it is in the market, and how to wait for a bar.

A :class:`Clock` gives the session's notion of the current market time (:meth:`Clock.now`,
integer nanoseconds since the epoch, UTC, like :attr:`tradeloom.model.Bar.ts`) and waits until
a market time is reached (:meth:`Clock.sleep_until`). Three implementations:

* :class:`WallClock`: real time, for live feeds;
* :class:`ReplayClock`: market time runs ``speed`` times faster than real time from a start
  bar, or as fast as possible (``speed = 0`` or ``inf``), for replaying history;
* :class:`ManualClock`: moves only when a test advances it.

This is the one module of the library that reads real time: a real-time session has to. Elapsed
time comes from :func:`time.monotonic` (never goes backwards, not moved by NTP); only
:class:`WallClock` reads the epoch time once, when built, to know where "now" is.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Protocol, runtime_checkable

__all__ = ["LATE_GRACE_SECONDS", "Clock", "ManualClock", "ReplayClock", "WallClock"]

_NS = 1_000_000_000

LATE_GRACE_SECONDS = 0.05
"""Real seconds a paced clock may run past a bar's time before the bar counts as late: the
jitter of waking up from a sleep is not lateness."""


@runtime_checkable
class Clock(Protocol):
    """The session's market time and a way to wait for a point of it.

    A clock may also have ``late_grace_ns``: how far (market ns) past a bar's time the bar still
    counts as on time (0 when missing)."""

    def now(self) -> int:
        """The current market time, ns since the epoch (UTC)."""
        ...

    async def sleep_until(self, ts: int) -> None:
        """Return once the market time is ``ts`` or later (at once if it already is)."""
        ...


class WallClock:
    """Real time: market time is the current UTC time."""

    late_grace_ns = int(LATE_GRACE_SECONDS * _NS)

    def __init__(self) -> None:
        # The one read of the epoch time; from here on only the monotonic clock, so now() never
        # goes backwards when the system clock is stepped. A real-time clock needs real time:
        # this is the exception the banned-API rule (TID251) exists to make visible.
        self._epoch_ns = int(time.time() * _NS)  # noqa: TID251
        self._mono_ns = time.monotonic_ns()

    def now(self) -> int:
        return self._epoch_ns + (time.monotonic_ns() - self._mono_ns)

    async def sleep_until(self, ts: int) -> None:
        delay = (ts - self.now()) / _NS
        await asyncio.sleep(max(delay, 0.0))


class ReplayClock:
    """Market time for replaying history: ``start_ts + wall seconds elapsed × speed``.

    ``speed = 60`` plays one-minute bars once a second. ``speed = 0`` or ``inf`` means as fast
    as possible: :meth:`sleep_until` returns at once (after letting other tasks run) and
    :meth:`now` is the latest time waited for (the last bar's).

    Without ``start_ts`` the clock starts at the first :meth:`sleep_until` (the first bar of a
    replay): market time is that bar's time then, and :meth:`now` is 0 before it. With
    ``start_ts`` it starts when built.
    """

    def __init__(self, start_ts: int | None = None, speed: float = 1.0) -> None:
        if not (speed >= 0):  # also refuses NaN
            raise ValueError(f"speed must be >= 0 (0 or inf: as fast as possible), got {speed}")
        self.speed = float(speed)
        self.instant = self.speed == 0 or math.isinf(self.speed)
        """True when the clock does not wait (speed 0 or inf)."""
        self.start_ts: int | None = None
        self._mono = 0.0
        self._last = 0
        if start_ts is not None:
            self._start(int(start_ts))

    @property
    def late_grace_ns(self) -> int:
        return 0 if self.instant else int(LATE_GRACE_SECONDS * self.speed * _NS)

    @property
    def started(self) -> bool:
        return self.start_ts is not None

    def _start(self, ts: int) -> None:
        self.start_ts = ts
        self._mono = time.monotonic()
        self._last = ts

    def now(self) -> int:
        if self.start_ts is None:
            return 0
        if self.instant:
            return self._last
        elapsed = time.monotonic() - self._mono
        # Never behind a time already waited for (a sleep may wake a hair early).
        return max(self.start_ts + int(elapsed * self.speed * _NS), self._last)

    async def sleep_until(self, ts: int) -> None:
        ts = int(ts)
        if self.start_ts is None:
            self._start(ts)
            await asyncio.sleep(0)
            return
        if not self.instant:
            target = self._mono + (ts - self.start_ts) / _NS / self.speed
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
        else:
            await asyncio.sleep(0)  # as fast as possible, but other tasks still run
        self._last = max(self._last, ts)


class ManualClock:
    """A clock for tests: time moves only through :meth:`advance` and :meth:`set`, and
    :meth:`sleep_until` waits until it has been moved far enough."""

    late_grace_ns = 0

    def __init__(self, start_ts: int = 0) -> None:
        self._now = int(start_ts)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def now(self) -> int:
        return self._now

    def set(self, ts: int) -> None:
        """Move the clock to ``ts`` (never backwards) and wake the sleepers it reaches."""
        ts = int(ts)
        if ts < self._now:
            raise ValueError(f"a clock does not go backwards: {ts} < now {self._now}")
        self._now = ts
        waiting = []
        for due, future in self._waiters:
            if future.done():
                continue
            if due <= ts:
                future.set_result(None)
            else:
                waiting.append((due, future))
        self._waiters = waiting

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward."""
        self.set(self._now + round(seconds * _NS))

    async def sleep_until(self, ts: int) -> None:
        if int(ts) <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((int(ts), future))
        await future
