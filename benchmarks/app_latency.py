"""How long a Fine-tune page rerun takes after one weight edit, on the demo (AppTest, in process).

Baseline: the same page rerun with no edit, in the same run. Each edit is a quick-edit downtune
of a different concept, applied and rerun. ``--images 10000 --corpus built-in`` runs it at the
scale of a real dataset (584+ concepts), where building downloads dominated a rerun before they
were deferred to the click. Last line: JSON with rerun_s_median, plain_rerun_s_median,
edit_over_plain.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import ROOT, emit
from streamlit.testing.v1 import AppTest

from infi.ui import state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1200)
    parser.add_argument("--corpus", default="demo", help="a preset name, e.g. demo or built-in")
    args = parser.parse_args()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=900).run()
    at.number_input(key=state.WORLD_SIZE).set_value(args.images)
    at.button(key=state.BTN_LOAD_WORLD).click().run()
    at.button(key=state.BTN_TEACHER).click().run()
    at.switch_page("pages/concepts.py").run()
    at.selectbox(key=state.CORPUS_CHOICE).set_value(args.corpus).run()
    at.button(key=state.BTN_EXTRACT).click().run()
    at.switch_page("pages/distill.py").run()
    at.button(key=state.BTN_DISTILL).click().run()
    at.switch_page("pages/finetune.py").run()
    assert not at.exception
    plain = []
    for _ in range(5):
        t0 = time.perf_counter()
        at.run()
        plain.append(time.perf_counter() - t0)
    concepts = list(at.selectbox(key=state.QUICK_CONCEPT).options)[:7]
    edits = []
    for concept in concepts:
        at.selectbox(key=state.QUICK_CONCEPT).set_value(concept)
        at.selectbox(key=state.QUICK_ACTION).set_value("downtune")
        at.number_input(key=state.QUICK_SCALE).set_value(0.5)
        t0 = time.perf_counter()
        at.button(key=state.BTN_QUICK).click().run()
        edits.append(time.perf_counter() - t0)
        assert not at.exception and not at.error, [e.value for e in at.error]
    session = at.session_state[state.SESSION]
    print(f"{len(session.dataset)} images, {len(session.concepts.names)} concepts; "
          f"{len(session.provenance) - 1} edits applied")
    print("plain reruns: " + ", ".join(f"{t:.3f}s" for t in plain))
    print("rerun after one edit (refit included): " + ", ".join(f"{t:.3f}s" for t in edits))
    med, base = statistics.median(edits), statistics.median(plain)
    print(f"median {med:.3f}s vs plain {base:.3f}s: {med / base:.2f}x")
    emit({"rerun_s_median": med, "plain_rerun_s_median": base, "edit_over_plain": med / base})


if __name__ == "__main__":
    main()
