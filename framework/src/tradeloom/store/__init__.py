"""The journal: runs, orders, fills, positions, equity, risk events and a hash-chained audit
log in SQLite (default) or PostgreSQL."""

from tradeloom.store.audit import Anchor, VerifyReport
from tradeloom.store.db import DEFAULT_URL, RunSummary, Store, StoreError, default_url

__all__ = [
    "DEFAULT_URL",
    "Anchor",
    "RunSummary",
    "Store",
    "StoreError",
    "VerifyReport",
    "default_url",
]
