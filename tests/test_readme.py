"""The README's Python examples run as written (so they cannot silently rot)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile("\n".join(blocks), str(README), "exec"), namespace)
    result = namespace["result"]
    assert len(result.trades) > 10  # type: ignore[attr-defined]
    assert (tmp_path / "buy-the-dip.html").stat().st_size > 100_000


def test_readme_quick_start_is_two_commands() -> None:
    text = README.read_text()
    quick = text.split("## Quick start", 1)[1].split("##", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", quick, re.S)
    assert block.strip().splitlines() == [
        "python -m pip install uv && uv run tradeloom demo",
        "uv run pytest",
    ]
