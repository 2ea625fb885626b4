"""Where a run's code came from: hashes of the strategies' source files and their git commit.

A strategy's *source* is every ``.py`` file of the top-level package its class is defined in
(the whole distribution's code, not only the module), or the module file itself when it is not
in a package. The hash is SHA-256 over the files in path order, each as
``relative path NUL content NUL``, so renaming, adding or editing any file changes it and
nothing else does (timestamps, ``__pycache__``). The git commit is read from the nearest
``.git`` above that package (a checkout or a worktree; no ``git`` binary needed); an installed
wheel has none (the search stops at ``site-packages``).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

from tradeloom.store.audit import canonical


def source_root(cls: type) -> Path | None:
    """The directory of the top-level package defining ``cls`` (or its module file)."""
    module = sys.modules.get(cls.__module__)
    top = sys.modules.get(cls.__module__.split(".")[0])
    for candidate in (top, module):
        file = getattr(candidate, "__file__", None)
        if file:
            path = Path(file)
            return path.parent if path.name == "__init__.py" else path
    return None


def source_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts and p.is_file())


def hash_sources(root: Path) -> tuple[str, int]:
    """SHA-256 of the source files under ``root`` and how many there are."""
    h = hashlib.sha256()
    files = source_files(root)
    base = root.parent if root.is_file() else root
    for path in files:
        h.update(path.relative_to(base).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest(), len(files)


def git_commit(path: Path) -> str | None:
    """The commit checked out in the git repository containing ``path``, if any."""
    for parent in [path, *path.parents]:
        if parent.name in ("site-packages", "dist-packages"):
            return None  # an installed distribution: the checkout around the venv is not its
        dot = parent / ".git"
        if dot.is_dir():
            return _head(dot)
        if dot.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = dot.read_text(encoding="utf-8", errors="replace").strip()
            if text.startswith("gitdir:"):
                gitdir = (parent / text.removeprefix("gitdir:").strip()).resolve()
                return _head(gitdir)
            return None
    return None


def _head(gitdir: Path) -> str | None:
    try:
        head = (gitdir / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head if _is_sha(head) else None
    ref = head.removeprefix("ref:").strip()
    common = gitdir
    commondir = gitdir / "commondir"  # worktrees keep refs in the main repository
    if commondir.is_file():
        common = (gitdir / commondir.read_text(encoding="utf-8").strip()).resolve()
    for base in (gitdir, common):
        loose = base / ref
        if loose.is_file():
            sha = loose.read_text(encoding="utf-8").strip()
            return sha if _is_sha(sha) else None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            sha, _, name = line.partition(" ")
            if name.strip() == ref and _is_sha(sha):
                return sha
    return None


def _is_sha(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def strategy_code(classes: list[type]) -> dict[str, Any]:
    """``code`` (per class: ``sha256``, ``files``, ``package``, ``git_commit``), ``code_hash``
    (over all of them) and ``git_commit`` (the first strategy's, or ``None``)."""
    code: dict[str, Any] = {}
    for cls in classes:
        name = f"{cls.__module__}.{cls.__qualname__}"
        root = source_root(cls)
        if root is None or not root.exists():
            code[name] = {"sha256": "", "files": 0, "package": "", "git_commit": None}
            continue
        digest, files = hash_sources(root)
        code[name] = {
            "sha256": digest,
            "files": files,
            "package": root.name,
            "git_commit": git_commit(root),
        }
    combined = hashlib.sha256(canonical({k: v["sha256"] for k, v in code.items()}).encode())
    first = next(iter(code.values()), {})
    return {"code": code, "code_hash": combined.hexdigest(), "git_commit": first.get("git_commit")}
