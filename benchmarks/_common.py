"""Shared helpers for benchmark scripts: timing and the final JSON line. The scripts import the
installed ``infi`` package (``pip install -r requirements.txt`` installs it)."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

from infi.demo.plugin import register

register()
ROOT = Path(__file__).resolve().parents[1]  # where app.py lives: the benchmarks drive the app too


def repo_module(relative: str):
    """A helper module of the repository (e.g. tests/browser_story.py) loaded by path, without
    putting the repository on sys.path."""
    spec = importlib.util.spec_from_file_location(Path(relative).stem, ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def emit(figures: dict) -> None:
    """The last line of every benchmark: one JSON object of its figures."""
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()}))
