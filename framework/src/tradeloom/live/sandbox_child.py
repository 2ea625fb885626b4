"""The process a sandboxed strategy runs in: ``python -m tradeloom.live.sandbox_child``.

Started by :class:`tradeloom.live.sandbox.SandboxedStrategy` with a scrubbed environment, it

1. takes its protocol pipes off stdin and stdout (both then point at ``/dev/null``, so a stray
   ``print`` cannot corrupt a frame; ``sys.stdout`` writes to stderr) and closes every other
   inherited file descriptor;
2. reads the handshake (the parent's import path, the strategy as ``module:qualname``, its
   params as JSON, the limits);
3. isolates itself **before any strategy code runs** (:func:`isolate`): a network namespace
   (no interface up: nothing to connect to, not even the runner's loopback), a private mount
   namespace, resource limits (address space, CPU time, file size, open files, no core
   dumps), then, when started as root, drops to the unprivileged ``nobody`` user, forbids new
   privileges and new processes, and works in an empty private directory;
4. reports what took effect (message ``isolated``), imports the strategy class, builds it from
   its validated params and says which callbacks it overrides (``ready``);
5. serves callbacks until told to exit: the strategy sees the real
   :class:`~tradeloom.strategy.Context` class, built on :class:`_Engine`, a stand-in for the
   engine that reads bars from a local mirror and asks the runner for everything else (the
   account, orders, and every order, cancel or replace, which the runner applies through its
   own Context).

See ``docs/sandbox.md`` and :mod:`tradeloom.live.protocol`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from time import perf_counter

# Only light modules above this line: everything heavy is imported by `isolate`, after the
# namespaces are in place (numpy, pandas and the framework itself).


def main() -> int:
    rfd, wfd = _take_pipes()
    from tradeloom.live import protocol

    pipe = _Pipe(rfd, wfd)
    handshake = pipe.recv()
    pipe.spin_s = float(handshake.get("spin_s", 0.0))  # type: ignore[attr-defined]
    try:
        report = isolate(handshake)
    except BaseException as exc:  # reported to the runner, then we exit
        pipe.send(_error_frame(exc))
        return 1
    pipe.send(protocol.encode("isolated", isolation=report))
    try:
        strategy = _load(handshake["target"], handshake["params"])
    except BaseException as exc:
        pipe.send(_error_frame(exc))
        return 1
    from tradeloom.components import Mode
    from tradeloom.strategy import Strategy

    cls = type(strategy)
    callbacks = [n for n in protocol.CALLBACKS if getattr(cls, n) is not getattr(Strategy, n)]
    caps = cls.capabilities
    capabilities = {
        "modes": [m.value for m in Mode if m in caps.modes],
        "multi_symbol": bool(caps.multi_symbol),
        "short_selling": bool(caps.short_selling),
    }
    pipe.send(protocol.encode("ready", callbacks=callbacks, capabilities=capabilities))
    return _Server(pipe, strategy, handshake.get("strategy_id", "")).serve()


# --- the pipes ----------------------------------------------------------------------------------
def _take_pipes() -> tuple[int, int]:
    """The protocol's read and write descriptors, moved off 0 and 1; every other inherited
    descriptor but stderr is closed."""
    rfd, wfd = os.dup(0), os.dup(1)  # not inheritable
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    sys.stdout = sys.stderr
    keep = {0, 1, 2, rfd, wfd}
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 256))
    for fd in fds:
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
    return rfd, wfd


class _Pipe:
    """Frames to and from the runner: pickles in (trusted), JSON out."""

    def __init__(self, rfd: int, wfd: int) -> None:
        import pickle
        import select

        from tradeloom.live.protocol import FrameReader

        self.rfd, self.wfd = rfd, wfd
        self.reader = FrameReader(None)
        self.loads = pickle.loads
        self.spin_s = 0.0
        """Busy-wait this long for the runner's next message before blocking (see
        ``SandboxLimits.spin_us``)."""
        os.set_blocking(rfd, False)
        self.poller = select.poll()
        self.poller.register(rfd, select.POLLIN)

    def recv(self) -> object:
        reader, rfd = self.reader, self.rfd
        while (payload := reader.next()) is None:
            chunk = None
            stop = perf_counter() + self.spin_s
            while chunk is None:
                try:
                    chunk = os.read(rfd, 1 << 20)
                except BlockingIOError:
                    if perf_counter() >= stop:
                        self.poller.poll()
            if not chunk:  # the runner is gone: nothing left to do
                raise SystemExit(0)
            reader.feed(chunk)
        return self.loads(payload)

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.wfd, view) :]


def _error_frame(exc: BaseException) -> bytes:
    import traceback

    from tradeloom.live import protocol

    kind = "MemoryError" if isinstance(exc, MemoryError) else type(exc).__name__
    try:
        text = "".join(traceback.format_exception(exc))
    except BaseException:  # e.g. still out of memory
        text = ""
    try:
        message = str(exc)
    except BaseException:  # a hostile __str__
        message = "<unprintable>"
    return protocol.encode(
        "error",
        type=kind[: protocol.MAX_ID],
        message=message[: protocol.MAX_TEXT],
        traceback=text[-(protocol.MAX_TRACEBACK - 1_000) :],
    )


# --- isolation ----------------------------------------------------------------------------------
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV = 1, 2, 4
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS = 38
MB = 1 << 20


def _libc() -> object:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [
        ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p,
    ]  # fmt: skip
    return libc


def _errno_text() -> str:
    import ctypes
    import errno

    code = ctypes.get_errno()
    return f"{errno.errorcode.get(code, code)} ({os.strerror(code)})"


def _unshare(flags: int) -> str | None:
    """``None`` when the namespaces were created, else why not."""
    if not sys.platform.startswith("linux"):
        return f"not available on {sys.platform}"
    if _libc().unshare(flags) == 0:  # type: ignore[attr-defined]
        return None
    return f"unshare() refused: {_errno_text()}"


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    def b(text: str | None) -> bytes | None:
        return None if text is None else os.fsencode(text)

    if _libc().mount(b(source), b(target), b(fstype), flags, b(data) if data else None) != 0:  # type: ignore[attr-defined]
        raise OSError(f"mount {target}: {_errno_text()}")


def _allowed(path: str, uid: int, gid: int, bits: int) -> bool:
    st = os.stat(path)
    mode = (
        st.st_mode >> 6 if st.st_uid == uid else st.st_mode >> 3 if st.st_gid == gid else st.st_mode
    )
    return mode & bits == bits


def _blocked_at(path: str, uid: int, gid: int) -> str | None:
    """The first directory from ``/`` down that keeps ``uid``/``gid`` (no other groups) from
    reading ``path`` (``path`` itself when it is the unreadable one), or ``None``."""
    parts = os.path.abspath(path).split(os.sep)[1:]
    current = "/"
    for part in parts:
        if not _allowed(current, uid, gid, 1):
            return current
        current = os.path.join(current, part)
    need = 5 if os.path.isdir(current) else 4
    return None if _allowed(current, uid, gid, need) else current


def _needed_paths(workdir: str) -> list[str]:
    """What the child must still read once it is ``nobody``: its import path, the interpreter's
    installation (for late imports of the standard library) and its working directory."""
    paths = {sys.prefix, sys.base_prefix, workdir}
    for entry in sys.path:
        if entry and os.path.exists(entry):
            paths.add(entry)
    found = set()
    for p in paths:
        found.add(os.path.abspath(p))
        found.add(os.path.realpath(p))
    return sorted(p for p in found if os.path.exists(p))


def _private_mounts(needed: list[str], uid: int, gid: int, workdir: str, file_mb: int) -> str:
    """In the child's own mount namespace (nothing propagates back): every directory that
    keeps ``nobody`` from a needed path (typically ``/root`` holding the Python installation) is
    covered by an empty read-only tmpfs into which only the needed entries are bind-mounted
    back; the working directory becomes a private tmpfs. Returns what was done."""
    import tempfile

    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    blocked: dict[str, set[str]] = {}
    for path in needed:
        at = _blocked_at(path, uid, gid)
        if at is None or at == "/":
            continue
        rel = os.path.relpath(path, at)
        if rel == ".":
            continue  # the needed path itself is unreadable: nothing to re-expose
        blocked.setdefault(at, set()).add(os.path.join(at, rel.split(os.sep)[0]))
    done = []
    for at, tops in sorted(blocked.items()):
        if any(at.startswith(other + os.sep) for other in blocked if other != at):
            continue
        inside = os.path.abspath(workdir).startswith(at + os.sep)
        staging = tempfile.mkdtemp(prefix="tradeloom-stage-", dir="/tmp" if inside else workdir)
        staged = []
        for i, top in enumerate(sorted(tops)):
            spot = os.path.join(staging, str(i))
            if os.path.isdir(top):
                os.mkdir(spot)
            else:
                open(spot, "w").close()  # a mount point
            _mount(top, spot, None, MS_BIND | MS_REC)
            staged.append((top, spot))
        _mount("tmpfs", at, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
        for top, spot in staged:
            if os.path.isdir(spot):
                os.makedirs(top, mode=0o755)
            else:
                open(top, "w").close()  # a mount point
            _mount(spot, top, None, MS_MOVE)
            (os.rmdir if os.path.isdir(spot) else os.unlink)(spot)
        os.rmdir(staging)
        _mount(None, at, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        done.append(f"{at} hidden but for {', '.join(sorted(tops))}")
    _mount(
        "tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV,
        f"mode=0700,uid={uid},gid={gid},size={max(file_mb, 1)}m",
    )  # fmt: skip
    done.append(f"working directory is a private {max(file_mb, 1)} MB tmpfs")
    return "private mount namespace: " + "; ".join(done)


def _vm_size_mb() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def isolate(handshake: dict) -> dict[str, object]:  # type: ignore[type-arg]
    """Apply every isolation the OS allows, in an order where each step still has the
    privileges it needs; return what took effect, in plain words."""
    import resource

    sys.path[:] = list(handshake["sys_path"])
    workdir: str = handshake["workdir"]
    uid, gid = handshake["user"]
    file_mb = int(handshake["file_mb"])
    report: dict[str, object] = {
        "env": "scrubbed: only " + ", ".join(sorted(os.environ)),
        "platform": sys.platform,
    }
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    network = "unavailable: not tried"
    filesystem = "unchanged: the child sees the runner's files with its own user's rights"
    if root:
        failed = _unshare(CLONE_NEWNET | CLONE_NEWNS)
        if failed is None:
            network = "namespace"
            try:
                filesystem = _private_mounts(_needed_paths(workdir), uid, gid, workdir, file_mb)
            except OSError as exc:
                filesystem = f"unchanged: {exc}"
        elif _unshare(CLONE_NEWNET) is None:
            network = "namespace"
        else:
            network = f"unavailable: {failed}"  # retried below as nobody, with a user namespace

    # The framework (numpy, pandas, the Context) is imported before the limits and the change of
    # user, so that neither depends on them; the strategy is imported after both.
    import numpy  # noqa: F401
    import pandas  # noqa: F401

    import tradeloom.risk.sizing  # noqa: F401 - ctx.size_* import it lazily
    from tradeloom.strategy import Context  # noqa: F401

    memory_mb, cpu_seconds = handshake["memory_mb"], handshake["cpu_seconds"]
    if memory_mb is not None:
        used = _vm_size_mb()
        if memory_mb < used + 64:
            raise MemoryError(
                f"memory_mb={memory_mb} leaves no room: the child already maps {used:,.0f} MB "
                f"of address space for Python, numpy and pandas; give at least "
                f"{int(used) + 256} MB"
            )
    unavailable: list[str] = []

    def limit(name: str, soft: int, hard: int | None = None) -> bool:
        try:
            resource.setrlimit(getattr(resource, name), (soft, soft if hard is None else hard))
        except (AttributeError, ValueError, OSError) as exc:
            unavailable.append(f"{name}: {exc}")
            return False
        return True

    if memory_mb is not None and not limit("RLIMIT_AS", memory_mb * MB):
        memory_mb = None
    report["memory_limit_mb"] = memory_mb
    if cpu_seconds is not None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        spent = usage.ru_utime + usage.ru_stime
        soft = int(spent + cpu_seconds + 0.999)
        if limit("RLIMIT_CPU", soft, soft + 1):
            report["cpu_used_at_start_s"] = round(spent, 2)
        else:
            cpu_seconds = None
    report["cpu_limit_s"] = cpu_seconds
    report["file_size_limit_mb"] = file_mb if limit("RLIMIT_FSIZE", file_mb * MB) else None
    limit("RLIMIT_CORE", 0)
    report["open_files_limit"] = 256 if limit("RLIMIT_NOFILE", 256) else None

    if root:
        blocked = [p for p in _needed_paths(workdir) if _blocked_at(p, uid, gid) is not None]
        if blocked:
            user = f"unchanged: uid {uid} could not read {blocked[0]}, so the child stays root"
        else:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            if os.getuid() != uid or os.geteuid() != uid:
                raise OSError(f"could not become uid {uid}")
            user = _user_name(uid)
    else:
        user = f"unchanged: not started as root; runs as uid {os.getuid()}, the runner's user"
    if network.startswith("unavailable") and (not root or not user.startswith("unchanged")):
        failed = _unshare(CLONE_NEWUSER | CLONE_NEWNET)
        network = "namespace (user namespace)" if failed is None else f"unavailable: {failed}"
    report["network"] = network
    report["user"] = user
    report["filesystem"] = filesystem
    if sys.platform.startswith("linux"):
        no_new_privs = _libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0  # type: ignore[attr-defined]
    else:
        no_new_privs = False
    report["no_new_privs"] = no_new_privs
    if os.geteuid() == 0:
        report["processes"] = "unlimited: root ignores RLIMIT_NPROC"
    elif limit("RLIMIT_NPROC", 0):
        report["processes"] = "no new processes or threads (RLIMIT_NPROC 0)"
    else:
        report["processes"] = "unlimited: RLIMIT_NPROC could not be set"
    if unavailable:
        report["limits_unavailable"] = "; ".join(unavailable)
    os.umask(0o077)
    os.chdir(workdir)
    os.environ["HOME"] = os.environ["TMPDIR"] = workdir
    return report


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def _load(target: str, params_json: str) -> object:
    """The strategy built as the registry builds it: ``cls(cls.Params(**params))``."""
    import importlib
    import json
    import re

    from tradeloom.errors import ConfigError
    from tradeloom.strategy import Strategy

    module_name, _, qualname = target.partition(":")
    name = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
    if not (name.match(module_name) and name.match(qualname)):
        raise ConfigError(f"strategy {target!r}: expected 'package.module:ClassName'")
    obj: object = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise ConfigError(f"{target} is not a Strategy subclass")
    params = obj.Params.model_validate(json.loads(params_json))
    return obj(params)


# --- the engine stand-in ------------------------------------------------------------------------
def _number(value: object, name: str) -> int | float | None:
    import numbers

    if value is None or type(value) in (int, float):
        return value  # type: ignore[return-value]
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"{name} must be a number, got {type(value).__name__}")


class _Remote:
    """Questions to the runner. Reads are cached until the callback ends or the strategy sends
    an order, cancel or replace (the runner's answer to which carries the account afresh)."""

    def __init__(self, pipe: _Pipe) -> None:
        from tradeloom import errors
        from tradeloom.live import protocol

        self.pipe = pipe
        self.encode = protocol.encode
        self.errors = {
            name: getattr(errors, name)
            for name in (
                "TradeloomError",
                "RunError",
                "OrderStateError",
                "ConfigError",
                "DataError",
            )
        }
        self.state: tuple | None = None  # type: ignore[type-arg]
        self.cache: dict[object, object] = {}

    def begin(self) -> None:
        self.state = None
        self.cache.clear()

    def _ask(self, kind: str, fields: dict[str, object]) -> object:
        self.pipe.send(self.encode(kind, **fields))
        reply = self.pipe.recv()
        if reply[0] == "ok":  # type: ignore[index]
            _, value, state = reply  # type: ignore[misc]
            if state is not None:
                self.state = state
            return value
        _, kind_name, message = reply  # type: ignore[misc]
        raise self.errors.get(kind_name, self.errors["RunError"])(message)

    def read(self, kind: str, **fields: object) -> object:
        key = (kind, *fields.values())
        if key in self.cache:
            return self.cache[key]
        value = self.cache[key] = self._ask(kind, fields)
        return value

    def write(self, kind: str, **fields: object) -> object:
        self.cache.clear()
        self.state = None  # an error leaves the account unknown: read it again
        return self._ask(kind, fields)

    def account(self) -> tuple:  # type: ignore[type-arg]
        """(cash, equity, buying power, AccountSnapshot, positions, working orders)."""
        if self.state is None:
            self.state = self._ask("state", {})  # type: ignore[assignment]
        return self.state  # type: ignore[return-value]


class _Bars:
    """One symbol's bars as the strategy has seen them: rows open, high, low, close, volume."""

    __slots__ = ("base", "buf", "n")

    def __init__(self) -> None:
        import numpy as np

        self.buf = np.empty((5, 256))
        self.n = 0
        self.base = 0
        """Bars before the first one kept (a streamed run keeps only recent bars)."""

    @property
    def count(self) -> int:
        return self.base + self.n

    def _room(self, extra: int) -> None:
        import numpy as np

        if self.n + extra > self.buf.shape[1]:
            grown = np.empty((5, max(2 * self.buf.shape[1], self.n + extra)))
            grown[:, : self.n] = self.buf[:, : self.n]
            self.buf = grown

    def append(self, bar: tuple) -> None:  # type: ignore[type-arg]
        self._room(1)
        self.buf[:, self.n] = bar[2:7]
        self.n += 1

    def extend(self, raw: tuple[int, bytes]) -> None:
        import numpy as np

        k = raw[0]
        block = np.frombuffer(raw[1], dtype=np.float64).reshape(5, k)
        self._room(k)
        self.buf[:, self.n : self.n + k] = block
        self.n += k

    def reset(self, count: int, raw: tuple[int, bytes]) -> None:
        self.n = 0
        self.extend(raw)
        self.base = count - self.n

    def view(self, symbol: str, row: int, n: int | None) -> object:
        from tradeloom.errors import RunError

        end = self.n
        if self.base and (n is None or n > end):
            asked = "all bars (n=None)" if n is None else f"{n} bars"
            raise RunError(
                f"history({symbol!r}) asked for {asked}, but this run streams its data in "
                f"chunks and keeps the last {end} bars of {symbol} here; pass a smaller n or "
                "raise run.history_bars"
            )
        start = 0 if n is None else max(0, end - n)
        view = self.buf[row, start:end]
        view.flags.writeable = False
        return view


class _Ledger:
    __slots__ = ("remote",)

    def __init__(self, remote: _Remote) -> None:
        self.remote = remote

    @property
    def cash(self) -> float:
        return self.remote.account()[0]  # type: ignore[no-any-return]

    def equity(self) -> float:
        return self.remote.account()[1]  # type: ignore[no-any-return]

    def rate(self, symbol: str) -> float:
        return self.remote.read("fx").get(symbol, 1.0)  # type: ignore[attr-defined, no-any-return]

    def position(self, symbol: str) -> object:
        held = self.remote.account()[4].get(symbol)
        if held is not None:
            return held
        if type(symbol) is not str:
            from tradeloom.model import Position

            return Position(symbol)
        return self.remote.read("position", symbol=symbol)

    def quantity(self, symbol: str) -> float:
        held = self.remote.account()[4].get(symbol)
        return 0.0 if held is None else held.quantity  # type: ignore[no-any-return]


class _Broker:
    __slots__ = ("ledger", "remote")

    def __init__(self, remote: _Remote) -> None:
        self.remote = remote
        self.ledger = _Ledger(remote)

    def positions(self) -> dict:  # type: ignore[type-arg]
        return dict(self.remote.account()[4])

    def buying_power(self) -> float:
        return self.remote.account()[2]  # type: ignore[no-any-return]

    def account(self) -> object:
        return self.remote.account()[3]

    def open_orders(self, symbol: str | None = None) -> list:  # type: ignore[type-arg]
        orders = self.remote.account()[5]
        if symbol is None:
            return list(orders)
        return [o for o in orders if o.symbol == symbol]


class _Risk:
    __slots__ = ("remote",)

    def __init__(self, remote: _Remote) -> None:
        self.remote = remote

    def room(self, strategy_id: str, symbol: str, side: object, view: object) -> float:
        return self.remote.read("room", symbol=symbol, side=side.value)  # type: ignore[attr-defined, return-value]


class _Orders:
    __slots__ = ("remote",)

    def __init__(self, remote: _Remote) -> None:
        self.remote = remote

    def get(self, client_order_id: object, default: object = None) -> object:
        if type(client_order_id) is not str:
            return default
        found = self.remote.read("get_order", id=client_order_id)
        return default if found is None else found


class _Engine:
    """What :class:`~tradeloom.strategy.Context` reads from an engine, in the child: bars from
    the mirror the runner keeps up to date, everything else asked of the runner, every order,
    cancel and replace sent to it. The Context class itself is the framework's own, so its
    validation, errors and helpers are those of an in-process strategy."""

    def __init__(self, remote: _Remote) -> None:
        self.remote = remote
        self.now = 0
        self.symbols: list[str] = []
        self.bars: dict[str, _Bars] = {}
        self.broker = _Broker(remote)
        self.risk = _Risk(remote)
        self.orders = _Orders(remote)

    def reset(self, symbols: list[str]) -> None:
        self.symbols = list(symbols)
        self.bars = {s: _Bars() for s in symbols}

    def sync(self, ops: list, arg: object) -> None:  # type: ignore[type-arg]
        bars = self.bars
        for op in ops:
            kind, symbol = op[0], op[1]
            if kind == "a":  # the bar being delivered is new
                bars[symbol].append(arg[symbol] if type(arg) is dict else arg)
            elif kind == "x":
                bars[symbol].extend(op[2])
            else:
                bars[symbol].reset(op[2], op[3])

    def _index_of(self, symbol: str) -> int:
        from tradeloom.errors import RunError

        try:
            return self.bars[symbol].count - 1
        except KeyError:
            raise RunError(
                f"unknown symbol {symbol!r}; this run has {', '.join(self.symbols)}"
            ) from None

    def bar_index(self, symbol: str) -> int:
        return self._index_of(symbol)

    def seen(self, symbol: str) -> int:
        return self._index_of(symbol) + 1

    def history(self, symbol: str, row: int, n: int | None) -> object:
        self._index_of(symbol)
        return self.bars[symbol].view(symbol, row, n)

    def last_price(self, symbol: str) -> float:
        self._index_of(symbol)
        bars = self.bars[symbol]
        return float(bars.buf[3, bars.n - 1]) if bars.n else float("nan")

    def risk_view(self) -> None:
        return None

    # --- what the strategy asks the runner to do -------------------------------------------------
    def submit(
        self,
        strategy_id: str,
        symbol: str,
        side: object,
        quantity: float,
        kind: object,
        limit: float | None,
        stop: float | None,
        tif: object,
        extra: dict | None = None,  # type: ignore[type-arg]
    ) -> object:
        from tradeloom.model import OrderType

        extra = extra or {}
        at = {OrderType.MARKET_ON_OPEN: "open", OrderType.MARKET_ON_CLOSE: "close"}.get(kind)  # type: ignore[call-overload]
        return self.remote.write(
            "order",
            symbol=self._symbol(strategy_id, symbol),
            quantity=quantity * side.sign,  # type: ignore[attr-defined]
            limit=_number(limit, "limit"),
            stop=_number(stop, "stop"),
            trail_amount=_number(extra.get("trail_amount"), "trail_amount"),
            trail_percent=_number(extra.get("trail_percent"), "trail_percent"),
            tif=tif.value,  # type: ignore[attr-defined]
            at=at,
        )

    def submit_oco(self, strategy_id: str, legs: list) -> object:  # type: ignore[type-arg]
        first, second = legs
        return self.remote.write(
            "oco",
            symbol=self._symbol(strategy_id, first["symbol"]),
            quantity=first["quantity"] * first["side"].sign,
            limit=_number(first["limit"], "limit"),
            stop=_number(second["stop"], "stop"),
            tif=first["tif"].value,
        )

    def submit_bracket(
        self,
        strategy_id: str,
        entry: dict,  # type: ignore[type-arg]
        take_profit: float,
        stop_loss: float,
    ) -> object:
        return self.remote.write(
            "bracket",
            symbol=self._symbol(strategy_id, entry["symbol"]),
            quantity=entry["quantity"] * entry["side"].sign,
            take_profit=_number(take_profit, "take_profit"),
            stop_loss=_number(stop_loss, "stop_loss"),
            limit=_number(entry["limit"], "limit"),
            tif=entry["tif"].value,
        )

    def replace(self, strategy_id: str, client_order_id: str, changes: dict) -> None:  # type: ignore[type-arg]
        from tradeloom.errors import RunError

        if type(client_order_id) is not str:
            raise RunError(f"replace(): no order {client_order_id!r} of strategy {strategy_id!r}")
        self.remote.write(
            "replace",
            id=client_order_id,
            quantity=_number(changes.get("quantity"), "quantity"),
            limit=_number(changes.get("limit_price"), "limit"),
            stop=_number(changes.get("stop_price"), "stop"),
        )

    def cancel(self, client_order_id: str) -> None:
        self.remote.write("cancel", id=client_order_id)

    def _symbol(self, strategy_id: str, symbol: object) -> str:
        if type(symbol) is not str:
            from tradeloom.errors import RunError

            raise RunError(
                f"strategy {strategy_id!r} ordered unknown symbol {symbol!r}; "
                f"this run trades {', '.join(self.symbols)}"
            )
        return symbol


# --- serving callbacks --------------------------------------------------------------------------
_WITH_ARGUMENT = frozenset({"on_bar", "on_bars", "on_fill", "on_order"})
_LEVELS = (
    (50, "CRITICAL"), (40, "ERROR"), (30, "WARNING"), (25, "SUCCESS"), (20, "INFO"), (10, "DEBUG"),
    (0, "TRACE"),
)  # fmt: skip
_LEVEL_NAMES = frozenset(name for _, name in _LEVELS)


class _Server:
    def __init__(self, pipe: _Pipe, strategy: object, strategy_id: str) -> None:
        from loguru import logger

        from tradeloom.live import protocol
        from tradeloom.strategy import Context

        self.pipe = pipe
        self.strategy = strategy
        self.remote = _Remote(pipe)
        self.engine = _Engine(self.remote)
        self.context_class = Context
        self.ctx = Context(self.engine, strategy_id)  # type: ignore[arg-type]
        self.encode = protocol.encode
        self.max_text = protocol.MAX_TEXT
        logger.remove()
        logger.add(self._log, level=0, format="{message}", colorize=False, catch=True)

    def _log(self, message: object) -> None:
        record = message.record  # type: ignore[attr-defined]
        level = record["level"]
        name = level.name
        if name not in _LEVEL_NAMES:  # a custom level: the nearest standard one below it
            name = next((n for no, n in _LEVELS if level.no >= no), "TRACE")
        self.pipe.send(
            self.encode("log", level=name, message=str(record["message"])[: self.max_text])
        )

    def serve(self) -> int:
        from tradeloom.live.protocol import DONE, frame
        from tradeloom.model import Bar

        pipe, engine, remote, strategy = self.pipe, self.engine, self.remote, self.strategy
        done = frame(DONE)
        make = tuple.__new__
        while True:
            message = pipe.recv()
            if message[0] == "exit":  # type: ignore[index]
                return 0
            _, name, ts, ops, arg = message  # type: ignore[misc]
            engine.now = ts
            if name == "on_start":
                strategy_id, symbols = arg
                engine.reset(symbols)
                self.ctx = self.context_class(engine, strategy_id)  # type: ignore[arg-type]
            if ops:
                engine.sync(ops, arg)
            if name == "on_bar":  # bars travel as plain tuples (four times cheaper to pickle)
                arg = make(Bar, arg)
            elif name == "on_bars":
                arg = {s: make(Bar, row) for s, row in arg.items()}
            remote.begin()
            ctx = self.ctx
            try:
                if name in _WITH_ARGUMENT:
                    getattr(strategy, name)(ctx, arg)
                else:
                    getattr(strategy, name)(ctx)
            except BaseException as exc:  # the runner decides what a fault does
                pipe.send(_error_frame(exc))
                return 1
            pipe.send(done)


if __name__ == "__main__":
    sys.exit(main())
