"""Fine-tune page components: the weight editor, applying edits, deltas, provenance, exports."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from infi.bundle import concept_frame, export_student, save_session
from infi.session import Session
from infi.tuning import ALL_CLASSES, KINDS, TuningAction
from infi.ui import state
from infi.ui.feedback import guarded

ALL_LABEL = "All classes"
DEFAULT_SCALE = {"downtune": 0.2, "uptune": 2.0}


def weight_table(session: Session, class_name: str) -> pd.DataFrame:
    """One row per concept, most influential first: weight, influence, spread, action, scale."""
    student = session.student
    X = session.concepts.X[session.train_idx]
    x_std = np.abs((X - student.mean_) / student.scale_).mean(0)
    if class_name == ALL_LABEL:
        W, S = student.weights_, student.spread_
        pick = np.abs(W).argmax(1)
        weight = W[np.arange(len(W)), pick]
        spread = S[np.arange(len(S)), pick]
    else:
        c = session.class_names.index(class_name)
        weight, spread = student.weights_[:, c], student.spread_[:, c]
    frame = pd.DataFrame({
        "concept": list(session.concepts.names),
        "weight": weight.astype(float),
        "influence": (np.abs(weight) * x_std).astype(float),
        "spread": spread.astype(float),
        "action": [""] * len(weight),
        "scale": [np.nan] * len(weight),
        "magnitude": [np.nan] * len(weight),
    })
    return frame.sort_values("influence", ascending=False, kind="stable").reset_index(drop=True)


def editor_key(class_name: str) -> str:
    return f"{state.WEIGHT_EDITOR}_{class_name}"


def actions_from(edited: pd.DataFrame, class_name: str) -> list[TuningAction]:
    """Rows with an action become TuningActions; scale defaults per kind."""
    actions = []
    target = ALL_CLASSES if class_name == ALL_LABEL else class_name
    for _, row in edited.iterrows():
        kind = (row.get("action") or "").strip()
        if not kind:
            continue
        scale = row.get("scale")
        scale = DEFAULT_SCALE.get(kind) if scale is None or pd.isna(scale) else float(scale)
        magnitude = row.get("magnitude")
        magnitude = None if magnitude is None or pd.isna(magnitude) else float(magnitude)
        actions.append(TuningAction(row["concept"], kind, target,
                                    scale if kind in DEFAULT_SCALE else None, magnitude))
    return actions


def editor(session: Session) -> tuple[str, pd.DataFrame]:
    cls = st.selectbox("Class", [ALL_LABEL, *session.class_names], key=state.TUNE_CLASS, index=1)
    table = weight_table(session, cls)
    st.caption("Pick an action per concept: **downtune** (|w| ≤ scale·|w0|), **uptune** (|w| ≥ "
               "scale·|w0|; give a signed magnitude when w0 is 0), **remove** (w = 0) or **lock** "
               "(w stays). Then press Apply: only the classes you touch are refit.")
    edited = st.data_editor(
        table, key=editor_key(cls), hide_index=True, width="stretch", height=320,
        disabled=["concept", "weight", "influence", "spread"],
        column_config={
            "weight": st.column_config.NumberColumn(format="%.3f", help="Member-mean weight"),
            "influence": st.column_config.NumberColumn(format="%.3f", help="|weight| × mean |standardized score|"),
            "spread": st.column_config.NumberColumn(format="%.3f", help="Std of the weight across members"),
            "action": st.column_config.SelectboxColumn(options=["", *KINDS]),
            "scale": st.column_config.NumberColumn(min_value=0.0, max_value=100.0, format="%.2f",
                                                   help="downtune: 0–1 (default 0.2); uptune: > 1 (default 2)"),
            "magnitude": st.column_config.NumberColumn(format="%.2f", help="uptune of a zero weight: signed size"),
        })
    quick_edit(session, cls, table)
    return cls, edited


def apply_edits(session: Session, cls: str, edited: pd.DataFrame) -> None:
    actions = actions_from(edited, cls)
    label = f"Apply {len(actions)} edit(s)" if actions else "Apply (choose an action first)"
    if st.button(label, type="primary", disabled=not actions, key=state.BTN_APPLY):
        with guarded("Applying the edits", "Check the scale: downtune takes 0–1, uptune more than 1."):
            with st.spinner("Refitting the touched classes…"):
                session.tune(actions, label=f"{len(actions)} edit(s) on {cls}")
            st.session_state.pop(editor_key(cls), None)
            state.notify(f"Applied {len(actions)} edit(s); deltas below.")
            st.rerun()


def quick_edit(session: Session, cls: str, table: pd.DataFrame) -> None:
    """One edit without the table: a concept, an action, a scale."""
    with st.form("quick_edit", border=True):
        st.markdown(f"**Quick edit** on {cls}")
        c1, c2, c3 = st.columns(3)
        concept = c1.selectbox("Concept (most influential first)", list(table["concept"]), key=state.QUICK_CONCEPT)
        kind = c2.selectbox("Action", KINDS, index=KINDS.index("downtune"), key=state.QUICK_ACTION)
        scale = c3.number_input("Scale", 0.0, 100.0, 0.2, 0.05, key=state.QUICK_SCALE,
                                help="downtune: 0–1; uptune: above 1")
        if st.form_submit_button("Apply this edit", type="primary", key=state.BTN_QUICK):
            target = ALL_CLASSES if cls == ALL_LABEL else cls
            action = TuningAction(concept, kind, target, float(scale) if kind in DEFAULT_SCALE else None)
            with guarded("Applying the edit", "downtune takes a scale in 0–1, uptune one above 1."):
                with st.spinner("Refitting…"):
                    session.tune([action], label=f"{kind} {concept} on {cls}")
                state.notify(f"Applied: {kind} {concept} on {cls}.")
                st.rerun()


def delta_keys(session: Session) -> list[str]:
    """Fidelity and accuracy on the held-out split and on every evaluation set, by name."""
    return ["fidelity", "accuracy", *(f"{name}_{m}" for name in session.eval_sets
                                      for m in ("fidelity", "accuracy"))]


def deltas(session: Session) -> None:
    if len(session.provenance) < 2:
        return
    step = session.provenance.steps[-1]
    before, after = step.metrics_before, step.metrics_after
    st.subheader(f"Last change: {step.label or 'edit'}")
    keys = [k for k in delta_keys(session) if after.get(k) is not None]
    for col, key in zip(st.columns(len(keys) or 1), keys):
        delta = after[key] - (before.get(key) or 0)
        col.metric(key.replace("_", " ").capitalize(), f"{after[key]:.1%}", f"{100 * delta:+.1f} pts")
    if before.get("per_class") and after.get("per_class"):
        rows = []
        for b, a in zip(before["per_class"], after["per_class"]):
            rows.append({"class": a["class"], "F1 before": b["f1"], "F1 after": a["f1"],
                         "accuracy before": b.get("accuracy"), "accuracy after": a.get("accuracy")})
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def provenance(session: Session) -> None:
    st.subheader("Provenance")
    st.dataframe(pd.DataFrame(session.provenance.table()), hide_index=True, width="stretch")
    c1, c2 = st.columns([2, 1])
    pick = c1.selectbox("Restore step", list(range(len(session.provenance))), key=state.RESTORE_PICK,
                        format_func=lambda i: f"step {i}: {session.provenance.table()[i]['actions']}")
    if c2.button("Restore", width="stretch", key=state.BTN_RESTORE):
        with guarded("Restoring"):
            session.restore(int(pick))
            state.notify(f"Restored step {pick} (logged as a new step).")
            st.rerun()


def downloads(session: Session) -> None:
    """Each file is built when its button is clicked (deferred), not on every rerun: at 10,000
    images x 584 concepts the bundle and the Parquet matrix alone took ~1.9 s per rerun."""
    st.subheader("Export")
    c1, c2, c3, c4 = st.columns(4)
    c1.download_button("Student (safetensors + card)", lambda: student_zip(session), "student.zip",
                       mime="application/zip", on_click="ignore", width="stretch")
    c2.download_button("Provenance (JSON)", session.provenance.to_json, "provenance.json",
                       mime="application/json", on_click="ignore", width="stretch")
    c3.download_button("Concept matrix (Parquet)", lambda: concept_parquet(session), "concepts.parquet",
                       mime="application/vnd.apache.parquet", on_click="ignore", width="stretch")
    c4.download_button("Session bundle (.infi)", lambda: save_session(session), "session.infi",
                       mime="application/zip", on_click="ignore", width="stretch")


def student_zip(session: Session) -> bytes:
    """The student as safetensors plus its JSON card (with held-out metrics), zipped."""
    with tempfile.TemporaryDirectory() as tmp:
        weights, card = export_student(session.student, session.concepts.names, session.class_names,
                                       Path(tmp), session.evaluate())
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.write(weights, weights.name)
            zf.write(card, card.name)
    return buf.getvalue()


def concept_parquet(session: Session) -> bytes:
    """The concept matrix X as Parquet, one row per image id, one column per concept."""
    buf = io.BytesIO()
    concept_frame(session).to_parquet(buf)
    return buf.getvalue()
