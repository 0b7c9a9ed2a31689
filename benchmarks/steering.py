"""Steering you can trust, measured on the demo world (the sizes of benchmarks/shortcut.py).

A readable student (the app's default NEC) is fitted on the biased split and evaluated on the
shifted one; then, each from the fitted student: the background group removed on triangle,
grass removed on triangle without and with hold-others, and the background group removed on
every class. The NEC search is timed against one plain fit at the λ it found (same run), and the
rerun after a chart selection on the Distill page is timed in Debian's chromium (the demo story,
1,200 images). Last line: JSON with nec_default, fidelity_default, anec5_fidelity,
anec5_shifted_accuracy, group_triangle_gain_pts, single_grass_gain_pts,
single_grass_hold_gain_pts, all_classes_gain_pts, all_classes_fidelity_drop_pts,
nec_path_over_fit and select_rerun_s_median.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import emit, repo_module, timed

from infi.config import DistillConfig, TuneConfig
from infi.corpus import preset
from infi.demo.world import from_world, generate_world
from infi.session import Session
from infi.student import ConceptStudent, effective_concepts
from infi.teachers import from_spec
from infi.tuning import TuningAction

EVAL_SEED = 424242


def demo_session(n_train: int, n_shifted: int, seed: int) -> Session:
    session = Session(seed=0)
    session.set_dataset(from_world(generate_world(n_train, split="biased", seed=seed)),
                        {"shifted": from_world(generate_world(n_shifted, split="shifted", seed=seed + 1))})
    session.run_teacher(from_spec("demo"))
    session.set_encoder("demo")
    session.extract_concepts(preset("demo"), "global")
    return session


def gain(session: Session, actions: list[TuningAction], hold: float | None) -> tuple[float, float]:
    """(shifted accuracy gain, fidelity drop) in points for one edit from the fitted student."""
    session.restore(0)
    fit = session.provenance.steps[0].metrics_after
    after = session.tune(actions, hold_others=hold).metrics_after
    return (100 * (after["shifted_accuracy"] - fit["shifted_accuracy"]),
            100 * (fit["fidelity"] - after["fidelity"]))


def nec_search_ratio(session: Session, repeats: int = 3) -> tuple[float, float, float]:
    """(median seconds of a fit with the NEC search, of a plain fit at the λ found, ratio)."""
    X, P = session.concepts.X[session.train_idx], session.P[session.train_idx]
    nec = DistillConfig().nec
    searched, plain = [], []
    found = None
    for _ in range(repeats):
        student, s = timed(ConceptStudent(nec=nec, random_state=0).fit, X, P)
        found = student.alpha_
        searched.append(s)
        plain.append(timed(ConceptStudent(alpha=found, random_state=0).fit, X, P)[1])
    a, b = statistics.median(searched), statistics.median(plain)
    return a, b, a / b


def select_rerun_seconds(clicks: int = 5) -> tuple[list[float], list[float], list[float]]:
    """Seconds from a click on a concept bar of the Distill page to the linked panel drawn; the
    baseline, from picking another class in the same views' selectbox to the chart redrawn; and
    from the click until the app reports it is idle again (Streamlit's running flag, which trails
    the drawing by a few tenths of a second on this machine)."""
    from playwright.sync_api import sync_playwright

    story = repo_module("tests/browser_story.py")
    settle = story.settle
    times, finished = [], []
    with story.streamlit_server(Path(tempfile.mkdtemp()) / "streamlit.log") as (url, _):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=story.chromium_path(), headless=True,
                                        args=story.CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            settle(page)
            page.get_by_role("button", name="Load Shapes World").click()
            settle(page)
            page.get_by_role("button", name="Run the demo teacher").click()
            settle(page)
            for link, button in (("Concepts", "Extract concepts"), ("Distill", "Distill the concept student")):
                page.get_by_role("link", name=link, exact=True).click()
                settle(page)
                page.get_by_role("button", name=button).click()
                settle(page)
            chart = page.locator("[data-testid='stVegaLiteChart']").filter(has_text="Concept influence on")
            bars = chart.locator("path[aria-roledescription='bar']")
            for i in range(clicks):
                bar = bars.nth(i % max(bars.count(), 1))
                label = bar.get_attribute("aria-label") or ""
                concept = next(part.split(": ", 1)[1] for part in label.split("; ") if part.startswith("concept: "))
                bar.scroll_into_view_if_needed()
                t0 = time.perf_counter()
                bar.click()
                page.get_by_text(f"“{concept}” in every class").first.wait_for(timeout=30_000)
                times.append(time.perf_counter() - t0)
                page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']")
                finished.append(time.perf_counter() - t0)
                print(f"  {concept}: panel drawn {times[-1]:.2f} s, app idle again {finished[-1]:.2f} s")
                settle(page)
            # Baseline in the same run: the same views redrawn after picking another class in
            # their selectbox (the browser and fragment floor, with no selection involved).
            baseline = []
            for cls in ("square", "triangle", "star", "cross", "hexagon"):
                box = page.get_by_role("combobox", name="Concept influence for class")
                box.click()
                page.keyboard.type(cls)
                t0 = time.perf_counter()
                page.get_by_role("option", name=cls, exact=True).click()
                page.get_by_text(f"Concept influence on “{cls}”").first.wait_for(timeout=30_000)
                baseline.append(time.perf_counter() - t0)
                page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']")
                settle(page)
            browser.close()
    return times, baseline, finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=EVAL_SEED, help="world seed (default: the benchmark's)")
    parser.add_argument("--n-train", type=int, default=6000)
    parser.add_argument("--n-shifted", type=int, default=3000)
    parser.add_argument("--no-browser", action="store_true", help="skip the chart-selection timing")
    args = parser.parse_args()

    session = demo_session(args.n_train, args.n_shifted, args.seed)
    hold = TuneConfig().hold_others
    anec5 = session.distill(nec=5.0)
    default = session.distill()
    nec_default = effective_concepts(session.student.weights_)
    print(f"default student (NEC target {DistillConfig().nec:g}): NEC {nec_default:.2f}, fidelity "
          f"{default['fidelity']:.3f}, shifted accuracy {default['shifted_accuracy']:.3f}, "
          f"λ {session.student.alpha_:.3g}")
    print(f"NEC 5: fidelity {anec5['fidelity']:.3f}, shifted accuracy {anec5['shifted_accuracy']:.3f}")
    group = [TuningAction.for_group("background", "remove", "triangle")]
    grass = [TuningAction("grass", "remove", "triangle")]
    every = [TuningAction.for_group("background", "remove")]
    group_gain, _ = gain(session, group, hold)
    grass_gain, _ = gain(session, grass, None)
    grass_hold_gain, _ = gain(session, grass, hold)
    all_gain, all_drop = gain(session, every, hold)
    print(f"remove the background group on triangle (hold ±{hold:.0%}): {group_gain:+.1f} pts shifted")
    print(f"remove grass on triangle: {grass_gain:+.1f} pts without hold-others, {grass_hold_gain:+.1f} pts with")
    print(f"remove the background group on every class (hold ±{hold:.0%}): {all_gain:+.1f} pts shifted, "
          f"fidelity {-all_drop:+.1f} pts")
    searched, plain, ratio = nec_search_ratio(session)
    print(f"fit with the NEC search {searched:.2f} s vs a plain fit at that λ {plain:.2f} s: {ratio:.2f}x")
    figures = {"nec_default": nec_default, "fidelity_default": default["fidelity"],
               "anec5_fidelity": anec5["fidelity"], "anec5_shifted_accuracy": anec5["shifted_accuracy"],
               "group_triangle_gain_pts": group_gain, "single_grass_gain_pts": grass_gain,
               "single_grass_hold_gain_pts": grass_hold_gain, "all_classes_gain_pts": all_gain,
               "all_classes_fidelity_drop_pts": all_drop, "nec_path_over_fit": ratio}
    if not args.no_browser:
        times, baseline, finished = select_rerun_seconds()
        print("rerun after a chart selection (chromium, click to linked panel drawn): "
              + ", ".join(f"{t:.2f}" for t in times) + " s")
        print("baseline, the same views after picking another class in their selectbox (chart redrawn): "
              + ", ".join(f"{t:.2f}" for t in baseline) + " s; selection over baseline "
              f"{np.median(times) / np.median(baseline):.2f}x")
        print("click until the app reports idle again: " + ", ".join(f"{t:.2f}" for t in finished) + " s")
        figures["select_rerun_s_median"] = float(np.median(times))
        figures["select_idle_s_median"] = float(np.median(finished))
        figures["select_baseline_s_median"] = float(np.median(baseline))
        figures["select_over_baseline"] = float(np.median(times) / np.median(baseline))
        figures["select_measured_in"] = "browser"
    emit(figures)


if __name__ == "__main__":
    main()
