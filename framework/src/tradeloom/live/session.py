"""A paper or live session's folder: where the runner and the operator meet.

``<sessions dir>/<name>/`` (``.tradeloom/sessions`` in the working directory unless
``TRADELOOM_SESSIONS`` or ``--sessions-dir`` says otherwise) holds:

* ``session.json``: the session's run id in the journal (a restart continues that run);
* ``risk_state.json``: the trading states (a HALTED account stays halted across restarts);
* ``runner.pid``: the process running it, while one does;
* ``status.json``: what the runner last reported (``tradeloom status`` prints it);
* ``control/``: operator commands (``tradeloom kill``, ``tradeloom resume``), one JSON file
  each, taken by the runner within a fraction of a second and deleted once applied.

Files are written atomically (a temporary file renamed over the old one), so a reader never
sees half a file and a crash never leaves one.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradeloom.errors import ConfigError

DEFAULT_DIR = Path(".tradeloom") / "sessions"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


def sessions_dir(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get("TRADELOOM_SESSIONS") or DEFAULT_DIR)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, allow_nan=False, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable ({exc}); repair or remove it") from None


@dataclass(frozen=True)
class Session:
    """The files of one named session."""

    name: str
    root: Path

    @classmethod
    def open(cls, name: str, root: str | Path | None = None) -> Session:
        if not _NAME.match(name):
            raise ConfigError(
                f"session name {name!r}: use letters, digits, '_', '-' and '.', starting with a "
                "letter or digit (at most 80 characters)",
                path="--session",
            )
        return cls(name, sessions_dir(root) / name)

    @property
    def info_file(self) -> Path:
        return self.root / "session.json"

    @property
    def state_file(self) -> Path:
        return self.root / "risk_state.json"

    @property
    def pid_file(self) -> Path:
        return self.root / "runner.pid"

    @property
    def status_file(self) -> Path:
        return self.root / "status.json"

    @property
    def control_dir(self) -> Path:
        return self.root / "control"

    def exists(self) -> bool:
        return self.info_file.exists()

    def info(self) -> dict[str, Any] | None:
        return read_json(self.info_file)

    def runner_pid(self) -> int | None:
        """The pid of the live runner of this session, if one is running."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def claim(self) -> None:
        """Become this session's runner; refused while another runner is alive."""
        other = self.runner_pid()
        if other is not None and other != os.getpid():
            raise ConfigError(
                f"session {self.name!r} is already running (pid {other}); stop it first "
                f"(`kill {other}` stops it gracefully) or choose another --session",
                path="--session",
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(f"{os.getpid()}\n")

    def release(self) -> None:
        try:
            if int(self.pid_file.read_text().strip()) == os.getpid():
                self.pid_file.unlink()
        except (OSError, ValueError):
            pass

    def command(self, action: str, **fields: Any) -> Path:
        """Leave an operator command for the runner (``kill``, ``resume``)."""
        stamp = f"{time.monotonic_ns():020d}-{os.getpid()}"
        path = self.control_dir / f"{stamp}-{action}.json"
        write_json(path, {"action": action, **fields})
        return path

    def commands(self) -> list[tuple[Path, dict[str, Any]]]:
        """Pending operator commands, oldest first."""
        folder = self.control_dir
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.glob("*.json")):
            try:
                out.append((path, json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError):
                continue  # being written: next poll
        return out
