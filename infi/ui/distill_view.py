"""Distill page components: student settings, metrics, charts and the disagreement explorer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from infi import metrics
from infi.config import DistillConfig
from infi.encoders import DEFAULT_ENCODER
from infi.session import Session
from infi.student import effective_concepts
from infi.ui import charts, state
from infi.ui.feedback import guarded, progress_status
from infi.ui.markdown import escape
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
            result = session.distill(config, progress=report)
            status.update(label="Student fitted", state="complete")
            low = result["fidelity"] < LOW_FIDELITY
            state.notify("Student distilled; its metrics are below. "
                         + ("Its fidelity is low: see what usually helps." if low else "Next: the Fine-tune page."))
            st.rerun()
        status.update(label="Distilling failed", state="error")

    if st.button("Distill the concept student", type="primary", key=state.BTN_DISTILL):
        ask_or_run(session, "Distilling again", run)


LOW_FIDELITY = 0.70  # below this the student does not explain the teacher well enough to steer


def low_fidelity_advice(session: Session, result: dict) -> None:
    """Instead of sending the person on to Fine-tune, what usually raises a low fidelity."""
    if result["fidelity"] >= LOW_FIDELITY:
        return
    demo_on_other = (session.encoder_id == DEFAULT_ENCODER and session.dataset is not None
                     and (session.dataset.source or {}).get("kind") != "shapes-world")
    tips = (["**Another encoder**: the demo encoder knows Shapes World only; choose a CLIP checkpoint "
             "such as `openai/clip-vit-base-patch32` on the Concepts page."] if demo_on_other else
            ["**Another encoder**: a larger CLIP checkpoint (ViT-B/16) often scores concepts better."])
    tips += ["**More or better concepts**: the built-in vocabulary, or words that describe what tells "
             "your classes apart; drop concepts that score the same on every image.",
             "**Another region mode**: *segments* or *patches* when what matters is a small part of the image.",
             "**More concepts per class** (a higher NEC above), at some cost in readability."]
    st.warning(f"The student agrees with the teacher on only {result['fidelity']:.0%} of held-out images, "
               "so its concepts do not yet explain the teacher; steering it would mislead. What usually "
               "helps:\n\n" + "\n".join(f"- {t}" for t in tips), icon=":material/warning:")


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
        col.metric(f"Accuracy on {escape(name)}", fmt(result[f"{name}_accuracy"]),
                   help=f"The student's accuracy on {escape(name)}; the teacher's: "
                        f"{fmt(result.get(f'{name}_teacher_accuracy'))}")


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


def selected(event, name: str) -> list[dict]:
    """The points a person selected in a chart (``on_select``), [] when none."""
    try:
        return list(event.selection.get(name) or [])
    except AttributeError:
        return []


def linked_views(session: Session, result: dict) -> None:
    """Views that drive each other: a confusion cell picks the images listed below it (and the
    class whose concept influence is shown), a concept bar shows that concept's weight in every
    class and its top images, and an image picked in the list shows the concepts behind the
    student's answer. Each group is a fragment: a selection reruns its own views, not the page."""
    st.altair_chart(charts.per_class_bars(result["per_class"], "f1", "Per-class fidelity (F1 vs teacher)",
                                          "F1 against the teacher's class"), width="stretch")
    left, right = st.columns(2)
    with left:
        cells_and_images(session)
    with right:
        concepts_of_a_class(session)


@st.fragment
def cells_and_images(session: Session) -> None:
    v = session.val_idx
    proba, teacher = session.student.predict_proba(session.concepts.X[v]), session.P[v]
    conf = metrics.student_teacher_confusion(proba, teacher, len(session.class_names))
    s_cls, t_cls = proba.argmax(1), teacher.argmax(1)
    event = st.altair_chart(charts.confusion_heatmap(conf, session.class_names, select=True), width="stretch",
                            on_select="rerun", key=state.CONFUSION_SELECT)
    st.caption("Click a cell to list its images below and show its teacher class's concepts.")
    cell = selected(event, "cell")
    if cell != st.session_state.get(state.LAST_CELL, []):
        st.session_state[state.LAST_CELL] = cell
        if cell:
            st.session_state[state.INFLUENCE_CLASS] = cell[0]["teacher"]
        st.rerun(scope="app")  # the concepts view is another fragment: redraw it with this class
    image_list(session, v, s_cls, t_cls, cell)


@st.fragment
def concepts_of_a_class(session: Session) -> None:
    names = session.class_names
    if st.session_state.get(state.INFLUENCE_CLASS) not in names:
        st.session_state.pop(state.INFLUENCE_CLASS, None)  # another dataset's class
    cls = st.selectbox("Concept influence for class", names, key=state.INFLUENCE_CLASS)
    c = names.index(cls)
    bar_event = st.altair_chart(charts.influence_bars(session.student.weights_[:, c], session.concepts.names, cls,
                                                      spread=session.student.spread_[:, c], select=True),
                                width="stretch", on_select="rerun", key=state.INFLUENCE_SELECT)
    picked = selected(bar_event, "concept")
    if picked:
        concept_panel(session, picked[0]["concept"])
    else:
        st.caption("Click a concept's bar to see its weight in every class and its top images.")


def concept_panel(session: Session, concept: str) -> None:
    j = session.concepts.names.index(concept)
    st.altair_chart(charts.weight_across_classes(session.student.weights_[j], session.class_names, concept),
                    width="stretch")
    idx = session.concepts.top_images(concept, 8)
    images = [im for im in (session.image(int(i)) for i in idx) if im is not None]
    if len(images) == len(idx) and len(idx):
        strip = np.concatenate([np.asarray(im.convert("RGB").resize((64, 64))) for im in images],
                               axis=1)  # one image: one request, not eight
        st.image(strip, caption=f"Top images for “{concept}” (scores "
                 + ", ".join(f"{session.concepts.X[i, j]:.2f}" for i in idx) + ")")


def image_list(session: Session, v: np.ndarray, s_cls: np.ndarray, t_cls: np.ndarray, cell: list[dict]) -> None:
    """The held-out images of the selected confusion cell (else where student and teacher
    disagree); picking one shows its contributions."""
    names = session.class_names
    if cell:
        t, s = names.index(cell[0]["teacher"]), names.index(cell[0]["student"])
        rows = np.flatnonzero((t_cls == t) & (s_cls == s))
        title = f"Held-out images the teacher calls {names[t]} and the student {names[s]} ({len(rows)})"
    else:
        rows = np.flatnonzero(s_cls != t_cls)
        title = f"Where student and teacher disagree ({len(rows)} of {len(v)} held-out images)"
    st.subheader(escape(title))
    if not len(rows):
        st.success("No held-out image here." if cell else
                   "The student agrees with the teacher on every held-out image.")
        return
    rows = rows[:500]
    frame = pd.DataFrame({"image": [session.image_ids()[int(v[j])] for j in rows],
                          "teacher": [names[t_cls[j]] for j in rows],
                          "student": [names[s_cls[j]] for j in rows]})
    event = st.dataframe(frame, hide_index=True, width="stretch", height=200, on_select="rerun",
                         selection_mode="single-row", key=state.IMAGE_SELECT)
    chosen = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    pick = rows[chosen[0]] if chosen and chosen[0] < len(rows) else rows[0]
    row = int(v[pick])
    c1, c2 = st.columns([1, 2])
    shown = session.image(row)
    if shown is not None:
        c1.image(shown, width=160, caption=f"teacher: {names[t_cls[pick]]} · student: {names[s_cls[pick]]}")
    contrib = session.student.explain(session.concepts.X[row:row + 1], int(s_cls[pick]))[0]
    c2.altair_chart(charts.contributions_bars(contrib, session.concepts.names,
                                              f"Why the student says “{names[s_cls[pick]]}”"), width="stretch")
    if not chosen:
        c2.caption("Pick a row above to explain another image.")
