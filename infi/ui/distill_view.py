"""Distill page components: student settings, metrics, charts and the disagreement explorer."""

from __future__ import annotations

import numpy as np
import streamlit as st

from infi import metrics
from infi.config import DistillConfig
from infi.session import Session
from infi.student import effective_concepts
from infi.ui import charts, state
from infi.ui.feedback import guarded, progress_status
from infi.ui.replacing import ask_or_run

METHOD_LABEL = "Concept student"
READABLE = "Readable (concepts per class)"
FIXED_ALPHA = "Fixed λ"


def settings_and_run(session: Session) -> None:
    """k, λ and the held-out share, with the defaults and ranges of ``DistillConfig``."""
    k_info, a_info, v_info, n_info = (DistillConfig.describe(n) for n in
                                      ("n_members", "alpha", "validation_share", "nec"))
    n_concepts = session.concepts.X.shape[1]
    modes = (READABLE, FIXED_ALPHA)
    readable = st.radio("Sparsity", modes, index=state.kept_index(state.SPARSITY, modes),
                        horizontal=True, **state.keeps(state.SPARSITY),
                        help="Readable: you choose how many concepts each class may use on average "
                             "(NEC) and λ is searched for it. Fixed λ: you set the L1 strength yourself.")
    c1, c2, c3 = st.columns(3)
    k = c1.number_input("Ensemble members k", int(k_info["low"]), int(k_info["high"]),
                        state.kept(state.MEMBERS, k_info["default"]), help=k_info["help"], **state.keeps(state.MEMBERS))
    nec, alpha = None, a_info["default"]
    if readable == READABLE:
        nec = c2.number_input("Concepts per class (NEC)", 1.0, float(max(n_concepts, 1)),
                              float(min(state.kept(state.NEC, n_info["default"]), n_concepts)), 1.0, format="%.0f",
                              help=n_info["help"], **state.keeps(state.NEC))
    else:
        alpha = c2.number_input("L1 strength λ", 0.0, 1.0, state.kept(state.ALPHA, a_info["default"]), 1e-4,
                                format="%.5f", help=a_info["help"], **state.keeps(state.ALPHA))
    share = c3.slider("Held-out share", 0.05, 0.5, state.kept(state.VAL_SHARE, v_info["default"]), 0.05,
                      **state.keeps(state.VAL_SHARE),
                      help=v_info["help"])
    def run() -> None:
        status, report = progress_status("Fitting the concept student…")
        with guarded("Distilling"):
            config = DistillConfig(n_members=int(k), nec=None if nec is None else float(nec),
                                   alpha=float(alpha), validation_share=float(share))
            session.distill(config, progress=report)
            status.update(label="Student fitted", state="complete")
            state.notify("Student distilled; its metrics are below. Next: the Fine-tune page.")
            st.rerun()
        status.update(label="Distilling failed", state="error")

    if st.button("Distill the concept student", type="primary", key=state.BTN_DISTILL):
        ask_or_run(session, "Distilling again", run)


def fmt(value) -> str:
    return "—" if value is None else f"{value:.1%}"


def headline(session: Session, result: dict) -> None:
    """Fidelity and accuracy on the held-out split, then the student's accuracy on each
    evaluation set (the teacher's in its help)."""
    extra = [name for name in session.eval_sets if result.get(f"{name}_accuracy") is not None]
    cols = st.columns(4 + len(extra))
    cols[0].metric("Fidelity (held-out)", fmt(result["fidelity"]), help="Top-1 agreement with the teacher")
    cols[1].metric("Student accuracy", fmt(result["accuracy"]))
    cols[2].metric("Teacher accuracy", fmt(result["teacher_accuracy"]))
    student = session.student
    cols[3].metric("Concepts per class (NEC)", f"{effective_concepts(student.weights_):.1f}",
                   help=f"Mean number of non-zero weights per class, of {student.weights_.shape[0]} concepts; "
                        f"λ = {student.alpha_:.2g}")
    for col, name in zip(cols[4:], extra):
        col.metric(f"Student accuracy on {name}", fmt(result[f"{name}_accuracy"]),
                   help=f"Teacher on {name}: {fmt(result.get(f'{name}_teacher_accuracy'))}")


def nec_path(session: Session) -> None:
    """Fidelity against NEC along the λ path the search took, so the person can pick a NEC."""
    path = session.student.path_
    if len(path) < 2:
        return
    with st.expander("Fidelity against concepts per class (the λ path)"):
        st.altair_chart(charts.nec_path(path, effective_concepts(session.student.weights_)), width="stretch")
        st.caption("Each point is one λ the search tried (fidelity on the early-stopping rows). Fewer "
                   "concepts per class read more easily; fidelity shows what it costs. Change "
                   "*Concepts per class* above and distill again to pick another point.")


def charts_block(session: Session, result: dict) -> None:
    v = session.val_idx
    proba = session.student.predict_proba(session.concepts.X[v])
    left, right = st.columns(2)
    left.altair_chart(charts.per_class_bars(result["per_class"], "f1", "Per-class fidelity (F1 vs teacher)",
                                            "F1 against the teacher's class"), width="stretch")
    conf = metrics.student_teacher_confusion(proba, session.P[v], len(session.class_names))
    right.altair_chart(charts.confusion_heatmap(conf, session.class_names), width="stretch")
    cls = st.selectbox("Concept influence for class", session.class_names, key=state.TUNE_CLASS + "_view")
    c = session.class_names.index(cls)
    st.altair_chart(charts.influence_bars(session.student.weights_[:, c], session.concepts.names, cls,
                                          spread=session.student.spread_[:, c]), width="stretch")


def disagreements(session: Session) -> None:
    v = session.val_idx
    proba = session.student.predict_proba(session.concepts.X[v])
    s_cls, t_cls = proba.argmax(1), session.P[v].argmax(1)
    differ = np.flatnonzero(s_cls != t_cls)
    st.subheader(f"Where student and teacher disagree ({len(differ)} of {len(v)} held-out images)")
    if not len(differ):
        st.success("The student agrees with the teacher on every held-out image.")
        return
    names = session.class_names
    options = list(differ[:200])
    pick = st.selectbox("Image", options, key=state.DISAGREE_PICK, format_func=lambda j: (
        f"#{int(v[j])}: teacher {names[t_cls[j]]}, student {names[s_cls[j]]}"))
    row = int(v[pick])
    c1, c2 = st.columns([1, 2])
    if session.dataset is not None:
        c1.image(session.dataset.image(row), width=160,
                 caption=f"teacher: {names[t_cls[pick]]} · student: {names[s_cls[pick]]}")
    contrib = session.student.explain(session.concepts.X[row:row + 1], int(s_cls[pick]))[0]
    c2.altair_chart(charts.contributions_bars(contrib, session.concepts.names,
                                              f"Why the student says “{names[s_cls[pick]]}”"), width="stretch")
