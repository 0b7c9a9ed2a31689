"""Shortcut repair on Shapes World with the demo teacher and encoder.

Train on the biased split (held-out biased validation inside the Session), evaluate on the shifted
split; then remove the background concepts from every class and refit. Reports fidelity on biased
validation and accuracy on shifted images before and after. Last line: JSON with fidelity,
shifted_acc_before, shifted_acc_after, shifted_gain_pts, fidelity_after, fidelity_drop_pts.
"""

from __future__ import annotations

import argparse

from _common import emit, timed

from infi.demo.plugin import demo_corpus
from infi.demo.teacher import DemoTeacherAdapter
from infi.demo.world import BACKGROUNDS, from_world, generate_world
from infi.session import Session
from infi.tuning import TuningAction

EVAL_SEED = 424242


def run(n_train: int, n_shifted: int, members: int, seed: int = EVAL_SEED) -> dict:
    session = Session(seed=0)
    session.set_dataset(from_world(generate_world(n_train, split="biased", seed=seed)),
                        {"shifted": from_world(generate_world(n_shifted, split="shifted", seed=seed + 1))})
    session.run_teacher(DemoTeacherAdapter())
    session.set_encoder("demo")
    session.extract_concepts(demo_corpus(), "global")
    before, fit_s = timed(session.distill, n_members=members)
    actions = [TuningAction(bg, "remove") for bg in BACKGROUNDS]
    step, refit_s = timed(session.tune, actions)
    after = step.metrics_after
    return {"before": before, "after": after, "fit_s": fit_s, "refit_s": refit_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=6000)
    parser.add_argument("--n-shifted", type=int, default=3000)
    parser.add_argument("--members", type=int, default=20)
    args = parser.parse_args()
    r = run(args.n_train, args.n_shifted, args.members)
    b, a = r["before"], r["after"]
    print(f"teacher: biased-val accuracy {b['teacher_accuracy']:.3f}, shifted accuracy "
          f"{b['shifted_teacher_accuracy']:.3f}")
    print(f"student before: fidelity {b['fidelity']:.3f}, shifted accuracy {b['shifted_accuracy']:.3f} "
          f"(fit {r['fit_s']:.2f}s)")
    print(f"remove {', '.join(BACKGROUNDS)} from every class (refit {r['refit_s']:.2f}s)")
    print(f"student after:  fidelity {a['fidelity']:.3f}, shifted accuracy {a['shifted_accuracy']:.3f}")
    print(f"baseline (the teacher itself) on shifted: {b['shifted_teacher_accuracy']:.3f}; "
          f"student after / teacher = {a['shifted_accuracy'] / b['shifted_teacher_accuracy']:.2f}x")
    emit({
        "fidelity": b["fidelity"],
        "shifted_acc_before": b["shifted_accuracy"],
        "shifted_acc_after": a["shifted_accuracy"],
        "shifted_gain_pts": 100 * (a["shifted_accuracy"] - b["shifted_accuracy"]),
        "fidelity_after": a["fidelity"],
        "fidelity_drop_pts": 100 * (b["fidelity"] - a["fidelity"]),
    })


if __name__ == "__main__":
    main()
