"""Packaging: the `infi` command, the files a wheel must carry, and a Community Cloud deployment
that installs the CPU build of torch without a hand edit."""

import subprocess
import sys
from pathlib import Path

import tomllib
from streamlit.testing.v1 import AppTest

from infi import __main__ as cli
from infi.ui import state

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
COMMANDS = ("embed", "concepts", "distill", "tune", "export", "prg")


def test_the_infi_command_lists_every_subcommand():
    script = Path(sys.executable).parent / "infi"
    assert script.is_file(), "pip install -e . (requirements-dev.txt) installs the infi command"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("usage: infi")
    for command in COMMANDS:
        assert f"\n    {command} " in out, command
    assert PYPROJECT["project"]["scripts"] == {"infi": "infi.__main__:main"}


def test_each_subcommand_has_help(capsys):
    import pytest

    for command in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            cli.main([command, "--help"])
        assert exit_.value.code == 0
        assert "usage: infi " + command in capsys.readouterr().out


def test_package_data_covers_every_asset_a_wheel_needs():
    """The demo's weights and tokenizer and the built-in vocabularies must be in the wheel."""
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]
    covered = set()
    for package, patterns in globs.items():
        folder = ROOT / package.replace(".", "/")
        for pattern in patterns:
            covered |= {p for p in folder.glob(pattern) if p.is_file()}
    needed = {p for folder in ("infi/demo/assets", "infi/data_files") for p in (ROOT / folder).rglob("*")
              if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts}
    assert needed and needed <= covered, sorted(str(p) for p in needed - covered)


def test_deploy_requirements_are_cpu_torch_plus_the_declared_dependencies():
    lines = [line.strip() for line in (ROOT / "deploy" / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "--extra-index-url https://download.pytorch.org/whl/cpu"
    assert lines[1].startswith("torch==") and lines[1].endswith("+cpu")
    declared = [d for d in PYPROJECT["project"]["dependencies"] if not d.startswith("torch")]
    assert lines[2:] == declared


def test_the_deploy_entry_point_runs_the_app_hosted(monkeypatch):
    monkeypatch.setenv("INFI_HOSTED", "unset")  # records "absent", so teardown removes what the app sets
    monkeypatch.delenv("INFI_HOSTED")
    at = AppTest.from_file(str(ROOT / "deploy" / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Data & teacher"
    sources = at.radio(key=state.DATA_SOURCE).options
    assert "Local folder" not in sources and "Shapes World (offline demo)" in sources


def test_ray_is_an_optional_extra_that_development_installs():
    """The app never needs Ray; `infi[scale]` brings it, and the test command installs it so CI runs
    the Ray engine instead of skipping it."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert not any(d.startswith("ray") for d in PYPROJECT["project"]["dependencies"])
    assert any(d.startswith("ray[data]") for d in extras["scale"])
    assert any(d.startswith("ray[data]") for d in extras["dev"])
    assert "-e .[scale]" in (ROOT / "requirements-scale.txt").read_text()
