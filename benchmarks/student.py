"""ConceptStudent speed at N = 10,000, K = 584, C = 10, k = 20 against scikit-learn.

Data: synthetic concept scores with correlated structure (shared latent factors, clipped at 0
like cosine scores) and a soft teacher that is a sparse softmax-linear function of them.
- full fit time (all members and classes at once, early stopping on a validation split);
- one-edit refit time: median over several single-concept edits on one class;
- baseline: scikit-learn's L1 logistic regression (liblinear, the faster one here) on the same
  problem: the student's standardized concepts on its fit rows (it holds 10% out to stop early),
  the same λ, the same soft targets (each row twice, with weights p and 1 - p): one fit per
  class and member. A sample of fits is timed and
  extrapolated to k × C, as printed.
- fidelity of our student vs one sklearn model per class (the sampled fits are all classes of one
  member), both on held-out rows.
Last line: JSON with fit_s, refit_s_median, sklearn_fit_s, speedup_vs_sklearn,
fidelity_gap_vs_sklearn_pts.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
from _common import emit, timed
from sklearn.linear_model import LogisticRegression

from infi.student import ConceptStudent
from infi.tuning import TuningAction, apply_actions, empty_bounds


def make_problem(n: int, k_concepts: int, c: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 24))
    mixing = rng.normal(size=(24, k_concepts)) / np.sqrt(24)
    X = np.clip(0.25 + 0.08 * (latent @ mixing) + 0.03 * rng.normal(size=(n, k_concepts)), 0, None)
    W = np.zeros((k_concepts, c))
    for j in range(c):
        idx = rng.choice(k_concepts, size=12, replace=False)
        W[idx, j] = rng.normal(0, 25, size=12)
    logits = (X - X.mean(0)) @ W
    logits += rng.gumbel(size=logits.shape) * 0.3
    P = np.exp(logits - logits.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    return X.astype(np.float32), P.astype(np.float32)


def sklearn_fit(X, P, c, alpha):
    """One L1 logistic fit for class c on soft targets, at our λ (C = 1 / (λ n))."""
    n = len(X)
    Xd = np.vstack([X, X])
    y = np.r_[np.ones(n), np.zeros(n)]
    w = np.r_[P[:, c], 1 - P[:, c]]
    model = LogisticRegression(l1_ratio=1.0, solver="liblinear", C=1.0 / (alpha * n), max_iter=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(Xd, y, sample_weight=w)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--concepts", type=int, default=584)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--sklearn-fits", type=int, default=10, help="fits to time (one member, all classes)")
    parser.add_argument("--edits", type=int, default=7)
    parser.add_argument("--member-iter", type=int, default=ConceptStudent().member_iter)
    args = parser.parse_args()
    torch.set_num_threads(2)

    X, P = make_problem(args.n + 2000, args.concepts, args.classes)
    Xtr, Ptr, Xte, Pte = X[: args.n], P[: args.n], X[args.n:], P[args.n:]
    student = ConceptStudent(n_members=args.members, alpha=args.alpha, random_state=0,
                             member_iter=args.member_iter)
    _, fit_s = timed(student.fit, Xtr, Ptr)
    fidelity = float((student.predict_proba(Xte).argmax(1) == Pte.argmax(1)).mean())
    print(f"fit: {fit_s:.2f}s ({student.n_iter_} iterations), held-out fidelity {fidelity:.4f}")
    every_row = ConceptStudent(n_members=args.members, alpha=args.alpha, random_state=0,
                               member_iter=args.member_iter, early_stopping=False)
    _, all_s = timed(every_row.fit, Xtr, Ptr)
    print(f"  for reference, early_stopping=False (fits all {args.n} rows): {all_s:.2f}s, "
          f"fidelity {(every_row.predict_proba(Xte).argmax(1) == Pte.argmax(1)).mean():.4f}")

    names = [f"c{j}" for j in range(args.concepts)]
    classes = [f"k{c}" for c in range(args.classes)]
    lower, upper = empty_bounds(student.coef_.shape)
    times = []
    rng = np.random.default_rng(1)
    W = student.weights_
    for e in range(args.edits):
        c = int(rng.integers(args.classes))
        j = int(np.argsort(-np.abs(W[:, c]))[e % 5])
        kind = ("remove", "downtune", "uptune")[e % 3]
        action = TuningAction(names[j], kind, classes[c], scale={"downtune": 0.3, "uptune": 1.5}.get(kind),
                              magnitude=0.5)
        lower, upper, touched = apply_actions([action], student.coef_, lower, upper, names, classes)
        _, t = timed(student.refit, Xtr, Ptr, lower, upper, touched)
        times.append(t)
    refit_median = float(np.median(times))
    print(f"refit after one edit: median {refit_median:.3f}s over {len(times)} edits "
          f"({', '.join(f'{t:.3f}' for t in times)})")

    n_fits = min(args.sklearn_fits, args.classes)
    models, sk_times = [], []
    # the student's λ acts on standardized concepts: give sklearn that same problem
    rows = student._fit_rows_
    Xfit_std, Xte_std = ((A - student.mean_) / student.scale_ for A in (Xtr[rows], Xte))
    for c in range(n_fits):
        m, t = timed(sklearn_fit, Xfit_std, Ptr[rows], c, args.alpha)
        models.append(m)
        sk_times.append(t)
        print(f"  sklearn liblinear fit, class {c}: {t:.1f}s")
    per_fit = float(np.mean(sk_times))
    sklearn_fit_s = per_fit * args.members * args.classes
    print(f"sklearn: {per_fit:.1f}s per fit, timed {n_fits} fits, extrapolated to "
          f"{args.members} members x {args.classes} classes = {sklearn_fit_s:.0f}s")
    gap = float("nan")
    if n_fits == args.classes:
        scores = np.stack([m.predict_proba(Xte_std)[:, 1] for m in models], axis=1)
        sk_fidelity = float((scores.argmax(1) == Pte.argmax(1)).mean())
        gap = 100 * (sk_fidelity - fidelity)
        print(f"sklearn one-member fidelity {sk_fidelity:.4f}; ours {fidelity:.4f}; "
              f"gap {gap:+.2f} points (positive: sklearn better)")
    speedup = sklearn_fit_s / fit_s
    print(f"speedup vs sklearn: {speedup:.0f}x (fit), refit / fit = {refit_median / fit_s:.3f}")
    emit({"fit_s": fit_s, "refit_s_median": refit_median, "sklearn_fit_s": sklearn_fit_s,
          "speedup_vs_sklearn": speedup, "fidelity_gap_vs_sklearn_pts": gap})


if __name__ == "__main__":
    main()
