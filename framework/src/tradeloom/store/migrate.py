"""Schema migrations (alembic), run programmatically on a connection the store opened.

Opening a store only reads its revision (one query on ``alembic_version``) and compares it with
:data:`REVISIONS`, so alembic — slow to import and to scan its scripts — is loaded only to
upgrade. A test checks that :data:`REVISIONS` lists the migration scripts exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, inspect, text

_SCRIPTS = Path(__file__).parent / "migrations"

REVISIONS = ("0001", "0002", "0003", "0004")
"""Every revision of the schema, oldest first; the last is the one this tradeloom writes."""


def _config(conn: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def script_revisions() -> list[str]:
    """The revisions of the migration scripts, oldest first (alembic reads the scripts)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_config())
    return [s.revision for s in reversed(list(scripts.walk_revisions()))]


def head_revision() -> str:
    return REVISIONS[-1]


def known_revisions() -> list[str]:
    """Every revision, oldest first."""
    return list(REVISIONS)


def current_revision(conn: Connection) -> str | None:
    """The database's revision; ``None`` when it has none (no ``alembic_version`` table, or
    an empty one)."""
    if "alembic_version" not in inspect(conn).get_table_names():
        return None
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).fetchall()
    return rows[0][0] if rows else None


def upgrade(conn: Connection, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(_config(conn), revision)


def table_names(conn: Connection) -> list[str]:
    return inspect(conn).get_table_names()
