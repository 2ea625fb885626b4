"""The strategy package template (``cookiecutter-strategy/``) through ``tradeloom new strategy``.

The acceptance test renders a package into a temporary folder, installs it into this
environment, runs the package's own tests, finds the strategy in ``tradeloom plugins list`` and
backtests it from the package's example config, all offline, then uninstalls it.

Installation: ``uv pip install --offline --no-deps -e`` (the package's dependencies are already
here and uv builds it with the hatchling in its cache); where uv or its cache is missing, by
hand, as an editable install is laid out: a ``.pth`` file naming the package's ``src`` and a
``.dist-info`` folder with the metadata and the ``tradeloom`` entry point. The package is
imported only in subprocesses (a ``.pth`` file is read when Python starts).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tradeloom.cli.main import main
from tradeloom.cli.new_cmd import SLUG_RE, class_name, kernel_range, slugify, template_dir


def render(out: Path, name: str, *extra: str) -> int:
    return main(["new", "strategy", name, "--author", "A. Quant", "--out", str(out), *extra])


def tradeloom_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The ``tradeloom`` command in a fresh interpreter of this environment."""
    command = [sys.executable, "-m", "tradeloom", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def install(project: Path) -> Callable[[], None]:
    """Install ``project`` (editable, no dependencies, no network); returns its uninstaller."""
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    uv = shutil.which("uv")
    if uv is not None:
        pip = [uv, "pip", "--offline"]
        target = ["--python", sys.executable]
        done = subprocess.run(
            [*pip, "install", *target, "--no-deps", "-e", str(project)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if done.returncode == 0:
            return lambda: subprocess.run(
                [*pip, "uninstall", *target, meta["name"]], check=True, capture_output=True
            )
    return install_by_hand(project, meta)


def install_by_hand(project: Path, meta: dict) -> Callable[[], None]:  # type: ignore[type-arg]
    site = Path(sysconfig.get_paths()["purelib"])
    stem = f"{meta['name'].replace('-', '_')}-{meta['version']}"
    pth, info = site / f"_{stem}.pth", site / f"{stem}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n"
    )
    points = meta["entry-points"]["tradeloom"]
    (info / "entry_points.txt").write_text(
        "[tradeloom]\n" + "".join(f"{k} = {v}\n" for k, v in points.items())
    )
    pth.write_text(f"{project / 'src'}\n")

    def uninstall() -> None:
        pth.unlink()
        shutil.rmtree(info)

    return uninstall


@pytest.fixture
def strategy_name() -> str:
    """A name no other test run uses at the same time in this environment."""
    return f"Tmpl {uuid.uuid4().hex[:8]}"


@pytest.fixture
def installed(
    request: pytest.FixtureRequest, tmp_path: Path, strategy_name: str
) -> Iterator[tuple[Path, bool]]:
    """The rendered package, installed, and whether it is vectorised (the test's parameter)."""
    vectorised = "--vectorised" if request.param else "--no-vectorised"
    assert render(tmp_path, strategy_name, "--description", "A template check.", vectorised) == 0
    project = tmp_path / f"tradeloom-{slugify(strategy_name)}"
    uninstall = install(project)
    try:
        yield project, request.param
    finally:
        uninstall()


@pytest.mark.slow
@pytest.mark.parametrize(
    "installed", [True, False], ids=["vectorised", "event-only"], indirect=True
)
def test_rendered_package_installs_tests_lists_and_backtests(
    installed: tuple[Path, bool], strategy_name: str, tmp_path: Path
) -> None:
    slug = slugify(strategy_name)
    project, vectorised = installed

    listed = tradeloom_cli("plugins", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = [r for r in json.loads(listed.stdout) if r["name"] == slug]
    assert [(r["kind"], r["distribution"], r["status"]) for r in rows] == [
        ("strategy", f"tradeloom-{slug}", "loaded")
    ]

    out = tmp_path / "run"
    config = project / "examples" / "backtest.toml"
    run = tradeloom_cli("backtest", str(config), "--no-journal", "--out", str(out), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    with (out / "trades.csv").open(newline="") as handle:
        trades = list(csv.DictReader(handle))
    assert len(trades) > 10
    assert {t["symbol"] for t in trades} == {"IBM", "MSFT"}
    assert {t["strategy_id"] for t in trades} == {slug}

    if importlib.util.find_spec("tradeloom.testing") is None:
        pytest.skip("tradeloom.testing (the contract kit the generated tests use) is missing")
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", str(project / "tests"), "-q", "-p", "no:cacheprovider"],
        cwd=project, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert " passed" in tests.stdout and "failed" not in tests.stdout
    # Only an event-only strategy may skip, and only the contract's signals() checks.
    assert ("skipped" in tests.stdout) is not vectorised, tests.stdout[-2000:]


@pytest.mark.parametrize("vectorised", [True, False])
def test_rendered_files(tmp_path: Path, vectorised: bool) -> None:
    flag = "--vectorised" if vectorised else "--no-vectorised"
    assert render(tmp_path, "Mean Revert", "--description", 'Buys "dips".', flag) == 0
    root = tmp_path / "tradeloom-mean-revert"
    package = root / "src" / "tradeloom_mean_revert"
    for path in [
        "README.md", ".gitignore", ".github/workflows/ci.yml", "examples/backtest.toml",
        "tests/test_strategy.py", "src/tradeloom_mean_revert/py.typed",
        "src/tradeloom_mean_revert/__init__.py", "src/tradeloom_mean_revert/plugin.py",
    ]:  # fmt: skip
        assert (root / path).is_file(), path
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["name"] == "tradeloom-mean-revert"
    assert project["project"]["description"] == 'Buys "dips".'
    assert project["project"]["authors"] == [{"name": "A. Quant"}]
    assert project["project"]["dependencies"][0] == "tradeloom>=0.1,<0.2"
    assert project["project"]["entry-points"]["tradeloom"] == {
        "mean-revert": "tradeloom_mean_revert.plugin"
    }
    strategy = (package / "strategy.py").read_text(encoding="utf-8")
    assert "class MeanRevert(Strategy):" in strategy
    assert ("def signals(self, data: SignalData)" in strategy) is vectorised
    tests = (root / "tests" / "test_strategy.py").read_text(encoding="utf-8")
    assert 'class TestMeanRevert(StrategyContract):\n    """' in tests
    assert 'strategy_type = "mean-revert"' in tests
    config = tomllib.loads((root / "examples" / "backtest.toml").read_text(encoding="utf-8"))
    assert config["strategy"]["type"] == "mean-revert"
    assert config["data"]["params"]["name"] == "us-stocks-daily"


def test_rendered_package_passes_its_own_ruff_config(tmp_path: Path) -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    for flag in ("--vectorised", "--no-vectorised"):
        assert render(tmp_path / flag, "Mean Revert", "--description", "Ünïcode – ok", flag) == 0
        root = tmp_path / flag / "tradeloom-mean-revert"
        for command in (["check", "."], ["format", "--check", "."]):
            done = subprocess.run([ruff, *command], cwd=root, capture_output=True, text=True)
            assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", ["123 Go", "!!!", "", "日本"])
def test_a_name_without_a_valid_slug_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    assert render(tmp_path, name) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot make a strategy name from") and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_refused_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert render(tmp_path, "Mean Revert") == 0
    keep = tmp_path / "tradeloom-mean-revert" / "NOTES.md"
    keep.write_text("mine")
    capsys.readouterr()
    assert render(tmp_path, "mean-revert") == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"error: {tmp_path / 'tradeloom-mean-revert'} already exists; choose another --out or pass --force"
    )
    assert render(tmp_path, "Mean Revert", "--force", "--no-vectorised") == 0
    assert keep.read_text() == "mine"
    strategy = tmp_path / "tradeloom-mean-revert" / "src" / "tradeloom_mean_revert" / "strategy.py"
    assert "def signals" not in strategy.read_text(encoding="utf-8")


def test_the_name_of_an_installed_distribution_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert render(tmp_path, "Strategies") == 2  # tradeloom-strategies is the first-party package
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: a distribution named tradeloom-strategies is already installed")
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_that_is_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").write_text("")
    assert render(tmp_path / "taken", "Mean Revert") == 2
    assert capsys.readouterr().err.startswith("error: cannot create the output folder")


def test_text_that_would_break_the_files_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert render(tmp_path, "Mean Revert", "--description", "two\nlines") == 2
    assert capsys.readouterr().err.startswith("error: --description must be one line")
    assert render(tmp_path, "Mean {{ x }} Revert") == 2
    assert capsys.readouterr().err.startswith("error: NAME must be one line")
    assert list(tmp_path.iterdir()) == []


def test_names_slugs_and_ranges() -> None:
    assert slugify("  Mean   Revert!! v2 ") == "mean-revert-v2"
    assert slugify("Überlauf Ärger") == "uberlauf-arger"
    assert class_name("mean-revert-v2") == "MeanRevertV2"
    assert SLUG_RE.match("a1-2b") and not SLUG_RE.match("1a") and not SLUG_RE.match("a--b")
    assert kernel_range("0.1.0") == ">=0.1,<0.2"
    assert kernel_range("0.3.2.dev1") == ">=0.3,<0.4"
    assert kernel_range("1.4.0") == ">=1.4,<2"
    # An editable install from the workspace reads the template from the repository.
    assert (template_dir() / "cookiecutter.json").is_file()
