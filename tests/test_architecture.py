"""The house rules, checked on the source: core modules do not know the demo, only infi/ui and
the pages import Streamlit, and plug-ins arrive through the registry."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from infi import registry
from infi.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "infi"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions, as absolute names."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def core_modules() -> list[Path]:
    """Everything under infi/ except the demo plug-in, the UI and the CLI."""
    return [p for p in sorted(PACKAGE.rglob("*.py"))
            if not {"demo", "ui"} & set(p.relative_to(PACKAGE).parts) and p.name != "__main__.py"]


def test_no_core_module_imports_the_demo():
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p)
                                                  if m == "infi.demo" or m.startswith("infi.demo."))
                 for p in core_modules()}
    assert len(offenders) >= 15  # the walk really found the core modules
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_the_core_loads_neither_the_demo_nor_streamlit():
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts) for p in core_modules())
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules) +
            "bad = [m for m in sys.modules if m.startswith('infi.demo') or m in ('streamlit', 'ray')]\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == ""


def test_only_the_ui_and_the_pages_import_streamlit():
    for path in PACKAGE.rglob("*.py"):
        if "ui" in path.relative_to(PACKAGE).parts:
            continue
        assert not any(m.split(".")[0] == "streamlit" for m in imported_modules(path)), path


def test_only_the_ray_engine_imports_ray():
    """Ray is an optional extra: the app, the core and the CLI run without it; only
    ``infi embed --engine ray`` loads infi.ray_embed, which imports it."""
    files = [*PACKAGE.rglob("*.py"), ROOT / "app.py", *(ROOT / "pages").glob("*.py")]
    importers = sorted(str(p.relative_to(ROOT)) for p in files
                       if any(m.split(".")[0] == "ray" for m in imported_modules(p)))
    assert importers == ["infi/ray_embed.py"]
    for path in files:
        if path.name not in ("ray_embed.py", "bulk_embed.py"):
            assert "infi.ray_embed" not in imported_modules(path), path


def test_the_demo_arrives_as_a_registered_plugin():
    assert "demo" in registry.ENCODERS.names() and "demo" in registry.TEACHERS.names()
    assert "demo" in registry.CORPORA.names() and "shapes-world" in registry.DATASETS.names()
    with pytest.raises(InputError, match=r"no teacher named 'zzz' \(known: .*demo"):
        registry.TEACHERS.get("zzz")


def test_the_installed_package_declares_the_demo_entry_point():
    from importlib.metadata import entry_points

    found = {e.name: e.value for e in entry_points(group=registry.PLUGIN_GROUP)}
    assert found.get("demo") == "infi.demo.plugin:register"
