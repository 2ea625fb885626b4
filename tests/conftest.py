"""Suite-wide fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _journal_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Commands that journal runs write to a store in a temporary folder, never the checkout
    (session-scoped, so module-scoped fixtures that run the CLI get it too)."""
    folder = tmp_path_factory.mktemp("journal")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRADELOOM_STORE", f"sqlite:///{folder / 'tradeloom.db'}")
        yield folder
