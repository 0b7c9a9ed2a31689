"""Hostile and broken inputs against every loader, each in its own child process under a memory cap
and a time limit (cases: tests/hostile/cases.py; harness: tests/hostile/runner.py).

Per case: only ``InfiError`` subclasses may escape, nothing may hang, hit a MemoryError or peak
over 1,500 MB of RSS, no pickle may be executed, the good items must be kept, what loaded must
decode and be usable, and each case's expectation (ok / refused / either) must hold. Every
failure is collected into one table.
"""

from __future__ import annotations

import pickletools
import time
from collections import Counter

import pytest

from tests.hostile.cases import CASES, _Canary, canary_dir, evil_pickle
from tests.hostile.runner import RSS_BUDGET_MB, in_child, problems, run_cases


def test_cases_cover_every_loader():
    counts = Counter(c.category for c in CASES)
    assert len(CASES) >= 110
    assert set(counts) == {"images", "archives", "folders", "predictions", "bundles", "concepts", "models"}


def test_harness_sees_memory_hangs_and_pickles(tmp_path):
    """The harness itself: a child over its cap reports memory, one that never returns is killed
    as a hang, and an unpickled canary leaves its file."""
    assert in_child(lambda: {"n": len(bytearray(2048 * 1024**2))}, 20, cap_mb=256)["outcome"] == "memory"
    t0 = time.monotonic()
    assert in_child(lambda: time.sleep(60) or {}, 1, cap_mb=None)["outcome"] == "hang"
    assert time.monotonic() - t0 < 10
    files = tmp_path / "files"
    files.mkdir()
    canary_dir(files).mkdir()
    # What unpickling would run, read from the opcodes (nothing is unpickled), then run by hand:
    # the canary calls open() on a file in the canary folder, which the harness checks.
    globals_ = [arg for op, arg, _ in pickletools.genops(evil_pickle(files, "fired")) if op.name == "GLOBAL"]
    assert [g.split()[-1] for g in globals_] == ["open"]  # io.open, found by name on unpickling
    call, args = _Canary(canary_dir(files) / "fired").__reduce__()
    call(*args).close()
    assert [p.name for p in canary_dir(files).iterdir()] == ["fired"]


def test_hostile_inputs_are_refused_or_loaded_safely():
    results = run_cases(CASES, workers=2)
    rows = [(case.name, found) for case, result in zip(CASES, results)
            for found in problems(case, result, RSS_BUDGET_MB)]
    if rows:
        width = max(len(name) for name, _ in rows)
        table = "\n".join(f"{name:<{width}} | {found}" for name, found in rows)
        pytest.fail(f"{len({n for n, _ in rows})} of {len(CASES)} hostile cases fail:\n{table}", pytrace=False)
