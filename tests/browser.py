"""Render a local HTML file in headless Chromium and collect the page's console errors.

A plain helper module (not a conftest) so any test can open a generated report::

    from browser import chromium_path, render_dom

    dom, errors = render_dom(report_path)
    assert not errors

Chromium's ``--enable-logging=stderr`` prints every console message as
``[...:INFO:CONSOLE:<line>] "<message>", source: <url> (<line>)`` whatever its level, so
``console.error`` cannot be told from ``console.log`` by the log alone. :func:`render_dom`
therefore renders a temporary copy of the page with a small probe injected at the top of
``<head>`` that prefixes ``console.error`` messages with ``[console.error]`` and reports
resources that fail to load (which Chromium does not log by itself). A ``<base>`` element
pointing at the original folder keeps relative links working. Both are removed from the
returned DOM. Errors are the probe's lines plus uncaught exceptions and rejected promises
(Chromium logs those as ``Uncaught ...``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

PROBE_MARK = "data-tradeloom-probe"
ERROR_PREFIX = "[console.error]"

_PROBE = (
    (
        '<base href="__BASE__" __MARK__>'
        "<script __MARK__>(function(){var c=window.console,o=c.error;"
        "c.error=function(){var a=Array.prototype.slice.call(arguments);"
        'a.unshift("__PREFIX__");return o.apply(c,a);};'
        'window.addEventListener("error",function(e){var t=e.target;'
        'if(t&&t!==window){c.error("failed to load "+t.tagName+" "+(t.src||t.href||""));}},true);'
        "})();</script>"
    )
    .replace("__MARK__", PROBE_MARK)
    .replace("__PREFIX__", ERROR_PREFIX)
)
_CONSOLE_LINE = re.compile(
    r"\[[^\]\n]*:CONSOLE[^\]\n]*\] \"(?P<message>.*?)\", source: (?P<source>[^\n]*?) \(\d+\)",
    re.DOTALL,
)
_STRIP = (
    re.compile(rf"<base [^>]*{PROBE_MARK}[^>]*>"),
    re.compile(rf"<script [^>]*{PROBE_MARK}[^>]*>.*?</script>", re.DOTALL),
)
_INSERT_AFTER = (
    re.compile(r"<meta[^>]*charset[^>]*>", re.IGNORECASE),
    re.compile(r"<head(\s[^>]*)?>", re.IGNORECASE),
    re.compile(r"<html(\s[^>]*)?>", re.IGNORECASE),
)


def chromium_path() -> str | None:
    """``/usr/bin/chromium`` if present, else ``chromium`` found on ``PATH``, else ``None``."""
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def inject_probe(page: str, base_url: str) -> str:
    """``page`` with the console probe (and a ``<base>``) inserted as early as possible."""
    probe = _PROBE.replace("__BASE__", base_url)
    for pattern in _INSERT_AFTER:
        match = pattern.search(page)
        if match:
            return page[: match.end()] + probe + page[match.end() :]
    return probe + page


def console_messages(stderr: str) -> list[str]:
    """Every console message Chromium logged to ``stderr``."""
    return [m.group("message") for m in _CONSOLE_LINE.finditer(stderr)]


def console_errors(stderr: str) -> list[str]:
    """Console messages that are errors: ``console.error`` (via the probe), failed resource
    loads (via the probe) and uncaught exceptions or promise rejections."""
    return [
        message
        for message in console_messages(stderr)
        if message.startswith(ERROR_PREFIX) or "Uncaught" in message
    ]


def render_dom(
    html_path: Path, *, budget_ms: int = 5000, timeout_s: float = 120.0
) -> tuple[str, list[str]]:
    """Open ``html_path`` in headless Chromium; return the DOM after scripts ran and the list
    of console errors (see :func:`console_errors`).

    Raises ``FileNotFoundError`` when Chromium is not installed and ``RuntimeError`` when it
    exits with an error.
    """
    binary = chromium_path()
    if binary is None:
        raise FileNotFoundError("headless Chromium not found (/usr/bin/chromium or on PATH)")
    html_path = Path(html_path).resolve()
    with tempfile.TemporaryDirectory(prefix="tradeloom-chromium-") as tmp:
        page = Path(tmp) / html_path.name
        base = html_path.parent.as_uri() + "/"
        page.write_text(inject_probe(html_path.read_text(encoding="utf-8"), base), "utf-8")
        command = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={Path(tmp) / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            page.as_uri(),
        ]
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    if proc.returncode != 0:
        raise RuntimeError(
            f"chromium exited with {proc.returncode} rendering {html_path}:\n{proc.stderr[-4000:]}"
        )
    dom = proc.stdout
    for pattern in _STRIP:
        dom = pattern.sub("", dom)
    return dom, console_errors(proc.stderr)
