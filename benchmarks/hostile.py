"""Hostile inputs against every loader (tests/hostile/cases.py), each case in its own child process
under a 1.5 GB address-space cap and a 30 s limit (tests/hostile/runner.py), two workers.

One line per case: name, outcome, peak RSS of the case's process in MB, seconds, and the problems
found (none when it passes). Last line: JSON with cases, failing_cases, unexpected_exceptions
(non-InfiError escapes, failures after loading, crashes), over_budget (peak RSS over 1,500 MB or
a MemoryError), hangs, pickles_executed, valid_items_lost (good items required but not kept,
summed), max_peak_rss_mb, baseline_rss_mb (a worker's RSS with Infi, torch and transformers
imported, before any case, measured in the same run) and seconds.
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import ROOT, emit

sys.path.insert(0, str(ROOT))  # tests.hostile is a package of the repository, not of infi

from tests.hostile.cases import CASES  # noqa: E402
from tests.hostile.runner import RSS_BUDGET_MB, items_lost, problems, run_cases  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="case names (default: all)")
    args = parser.parse_args()
    by_name = {c.name: c for c in CASES}
    chosen = [by_name[n] for n in args.only] if args.only else CASES

    def show(row: dict) -> None:
        found = problems(by_name[row["name"]], row)
        print(f"{row['name']:<48} {row.get('outcome', '?'):<11} {row.get('peak_rss_mb') or 0:>7.0f} MB "
              f"{row.get('seconds') or row.get('wall_s') or 0:>6.2f} s  {'; '.join(found) or 'pass'}"[:400],
              flush=True)

    t0 = time.perf_counter()
    results = run_cases(chosen, workers=args.workers, on_result=show)
    seconds = time.perf_counter() - t0
    failing = [r for c, r in zip(chosen, results) if problems(c, r)]
    emit({
        "cases": len(results),
        "failing_cases": len(failing),
        "unexpected_exceptions": sum(r.get("outcome") in ("unexpected", "late", "crash") for r in results),
        "over_budget": sum(r.get("outcome") == "memory" or (r.get("peak_rss_mb") or 0) > RSS_BUDGET_MB
                           for r in results),
        "hangs": sum(r.get("outcome") == "hang" for r in results),
        "pickles_executed": sum(bool(r.get("canary")) for r in results),
        "valid_items_lost": sum(items_lost(c, r) for c, r in zip(chosen, results)),
        "max_peak_rss_mb": max((r.get("peak_rss_mb") or 0) for r in results),
        "baseline_rss_mb": max((r.get("baseline_rss_mb") or 0) for r in results),
        "seconds": seconds,
    })


if __name__ == "__main__":
    main()
