"""The strategy sandbox's wire protocol: what the runner and a sandboxed strategy may say.

The runner (parent) and the strategy's child process talk over the child's stdin and stdout
pipes in **frames**: a 4-byte big-endian length, then the payload. The two directions are not
equally trusted, so they are not encoded alike:

* **parent → child**: pickles (protocol 5). They carry the runner's own objects (bars, orders,
  fills, account snapshots) to a process of the same framework, and only the child unpickles
  them. The child never needs to doubt the runner.
* **child → parent**: JSON objects, each validated here field by field (:func:`parse`) against
  :data:`MESSAGES` before the runner acts on it. The child runs untrusted code, which can write
  any bytes to the pipe; the runner never unpickles, ``eval``\\ s or imports anything it sends.
  A frame longer than :data:`MAX_CHILD_FRAME`, bytes that are not one JSON object, an unknown
  message type, a missing, extra or ill-typed field: each is a :class:`ProtocolError`, and the
  runner faults the strategy.

What a child may send (``"t"`` is the message type; every listed field is required, ``None``
where a value is optional; nothing else is accepted):

============  =============================================================================
type          fields and meaning
============  =============================================================================
isolated      ``isolation``: what the child's isolation achieved (sent before the strategy
              module is imported, so strategy code cannot have written it)
ready         ``callbacks``: the ``Strategy`` callbacks the class overrides; ``capabilities``
error         ``type``, ``message``, ``traceback``: the strategy (or its start-up) raised
done          the callback returned
log           ``level``, ``message``: one line for the strategy's log
order         ``symbol``, ``quantity`` (signed), ``limit``, ``stop``, ``trail_amount``,
              ``trail_percent``, ``tif``, ``at``: ``Context.order`` with these keywords
cancel        ``id``: ``Context.cancel`` of a client order id
replace       ``id``, ``quantity``, ``limit``, ``stop``: ``Context.replace``
oco           ``symbol``, ``quantity``, ``limit``, ``stop``, ``tif``: ``Context.oco``
bracket       ``symbol``, ``quantity``, ``take_profit``, ``stop_loss``, ``limit``, ``tif``:
              ``Context.bracket``
state         read the account: cash, equity, buying power, positions, working orders
position      ``symbol``: ``Context.position`` of a symbol not held
get_order     ``id``: ``Context.get_order``
fx            every symbol's ``Context.fx_rate`` now
room          ``symbol``, ``side``: ``Context.max_order_size``
============  =============================================================================

There is deliberately no field for a strategy id or a client order id of a new order (the
runner stamps both, as for an in-process strategy), and no message that reaches the risk
control: a sandboxed strategy cannot clear a halt, change a limit or speak for another
strategy, whatever bytes it writes.

The parent answers each message from ``order`` on with ``("ok", value, state)`` or
``("err", error class name, message)``; the first five get no answer.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from typing import Any

from tradeloom.errors import RunError

HEADER = struct.Struct(">I")
"""The length prefix of every frame."""

MAX_CHILD_FRAME = 1 << 20
"""The longest frame a child may send (1 MiB): a log line or an intent is far shorter."""

PICKLE_PROTOCOL = 5

CALLBACKS = ("on_start", "on_bars", "on_bar", "on_fill", "on_order", "on_stop")
"""The strategy callbacks the sandbox forwards."""

LOG_LEVELS = frozenset({"TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"})

MAX_ID = 256
"""Longest symbol, client order id, time in force or error type accepted from a child."""
MAX_TEXT = 8_192
"""Longest log line or error message accepted from a child (the child truncates first)."""
MAX_TRACEBACK = 65_536


class ProtocolError(RunError):
    """A sandboxed child sent something the protocol does not allow."""


def frame(payload: bytes) -> bytes:
    """``payload`` with its length prefix."""
    return HEADER.pack(len(payload)) + payload


class FrameReader:
    """Splits a byte stream into frames; refuses a frame longer than ``limit`` before reading
    it (``limit=None``: no limit, for the trusted direction)."""

    __slots__ = ("_buf", "_limit")

    def __init__(self, limit: int | None) -> None:
        self._buf = bytearray()
        self._limit = limit

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next(self) -> bytes | None:
        """The next complete frame's payload, or ``None`` until more bytes arrive."""
        buf = self._buf
        if len(buf) < HEADER.size:
            return None
        (size,) = HEADER.unpack_from(buf)
        if self._limit is not None and size > self._limit:
            raise ProtocolError(f"frame of {size:,} bytes; the limit is {self._limit:,}")
        end = HEADER.size + size
        if len(buf) < end:
            return None
        payload = bytes(buf[HEADER.size : end])
        del buf[:end]
        return payload

    @property
    def pending(self) -> int:
        """Bytes received and not yet returned as a frame."""
        return len(self._buf)


# --- validation of child -> parent messages ---------------------------------------------------
Check = Callable[[Any], bool]


def _text(limit: int) -> Check:
    return lambda v: type(v) is str and len(v) <= limit


def _number(v: Any) -> bool:
    """An int or float (never a bool) that fits a float: ``NaN`` and infinities pass, so that
    the runner's Context refuses them with the same error as in process."""
    if type(v) is float:
        return True
    return type(v) is int and abs(v) <= 2**63


def _optional(check: Check) -> Check:
    return lambda v: v is None or check(v)


def _one_of(*choices: object) -> Check:
    return lambda v: (v is None or type(v) is str) and v in choices


_ID = _text(MAX_ID)
_NUM = _number
_OPT_NUM = _optional(_number)


def _isolation(v: Any) -> bool:
    return (
        type(v) is dict
        and len(v) <= 32
        and all(
            type(k) is str
            and len(k) <= 64
            and (v[k] is None or type(v[k]) in (bool, int, float) or _text(1024)(v[k]))
            for k in v
        )
    )


def _callbacks(v: Any) -> bool:
    return type(v) is list and len(v) <= len(CALLBACKS) and all(c in CALLBACKS for c in v)


def _capabilities(v: Any) -> bool:
    if type(v) is not dict or set(v) != {"modes", "multi_symbol", "short_selling"}:
        return False
    modes = v["modes"]
    return (
        type(modes) is list
        and len(modes) <= 3
        and all(m in ("backtest", "paper", "live") for m in modes)
        and type(v["multi_symbol"]) is bool
        and type(v["short_selling"]) is bool
    )


MESSAGES: dict[str, dict[str, Check]] = {
    "isolated": {"isolation": _isolation},
    "ready": {"callbacks": _callbacks, "capabilities": _capabilities},
    "error": {"type": _ID, "message": _text(MAX_TEXT), "traceback": _text(MAX_TRACEBACK)},
    "done": {},
    "log": {"level": lambda v: type(v) is str and v in LOG_LEVELS, "message": _text(MAX_TEXT)},
    "order": {
        "symbol": _ID,
        "quantity": _NUM,
        "limit": _OPT_NUM,
        "stop": _OPT_NUM,
        "trail_amount": _OPT_NUM,
        "trail_percent": _OPT_NUM,
        "tif": _ID,
        "at": _one_of(None, "open", "close"),
    },
    "cancel": {"id": _ID},
    "replace": {"id": _ID, "quantity": _OPT_NUM, "limit": _OPT_NUM, "stop": _OPT_NUM},
    "oco": {"symbol": _ID, "quantity": _NUM, "limit": _NUM, "stop": _NUM, "tif": _ID},
    "bracket": {
        "symbol": _ID,
        "quantity": _NUM,
        "take_profit": _NUM,
        "stop_loss": _NUM,
        "limit": _OPT_NUM,
        "tif": _ID,
    },
    "state": {},
    "position": {"symbol": _ID},
    "get_order": {"id": _ID},
    "fx": {},
    "room": {"symbol": _ID, "side": _one_of("buy", "sell")},
}
"""Every message a child may send: its type and the check of each of its fields."""

ONE_WAY = frozenset({"isolated", "ready", "error", "done", "log"})
"""Messages the parent does not answer."""

DONE = b'{"t":"done"}'
"""The most frequent message, recognised without parsing (it is exactly what :func:`parse`
would accept for ``{"t": "done"}``)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ProtocolError("a JSON object repeats a key")
    return result


def parse(payload: bytes) -> dict[str, Any]:
    """The validated message in ``payload`` (one frame from the child), or
    :class:`ProtocolError` saying what is wrong with it."""
    if payload == DONE:
        return {"t": "done"}
    try:
        message = json.loads(payload.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except ProtocolError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"not a JSON message: {type(exc).__name__}") from None
    if type(message) is not dict:
        raise ProtocolError(f"expected a JSON object, got {type(message).__name__}")
    kind = message.get("t")
    fields = MESSAGES.get(kind) if type(kind) is str else None
    if fields is None:
        shown = kind if type(kind) is str and len(kind) <= 40 else type(kind).__name__
        raise ProtocolError(f"unknown message type {shown!r}; allowed: {', '.join(MESSAGES)}")
    keys = set(message) - {"t"}
    if keys != fields.keys():
        extra, missing = sorted(keys - fields.keys()), sorted(fields.keys() - keys)
        raise ProtocolError(
            f"{kind} message: "
            + "; ".join(
                part
                for part in (
                    f"unexpected field(s) {', '.join(_short(k) for k in extra)}" if extra else "",
                    f"missing field(s) {', '.join(missing)}" if missing else "",
                )
                if part
            )
        )
    for name, check in fields.items():
        if not check(message[name]):
            raise ProtocolError(f"{kind} message: invalid {name} ({_describe(message[name])})")
    return message


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _describe(value: Any) -> str:
    if type(value) is str:
        return f"a string of {len(value):,} characters" if len(value) > 40 else repr(value)
    if type(value) is float and not math.isfinite(value):
        return repr(value)
    if type(value) in (int, float, bool) or value is None:
        return repr(value)
    return type(value).__name__


def encode(kind: str, **fields: Any) -> bytes:
    """A child's message as a frame (used by the child; the parent only parses)."""
    return frame(json.dumps({"t": kind, **fields}, separators=(",", ":")).encode("utf-8"))
