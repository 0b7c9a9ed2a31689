"""Fine-tune page components: edits keyed by concept or group, one Apply, what the refit did
(the change, what took over, since the fit), provenance with restore and undo, exports."""

from __future__ import annotations

import io
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from infi.bundle import concept_frame, export_student, save_session
from infi.config import TuneConfig
from infi.session import Session
from infi.tuning import KINDS
from infi.ui import edits, state
from infi.ui.edits import ALL_LABEL, NO_ACTION
from infi.ui.feedback import guarded
from infi.ui.markdown import escape

ACTION_OPTIONS = [NO_ACTION, *KINDS]
PCT = st.column_config.NumberColumn(format="percent")


def class_picker(session: Session) -> str:
    options = [ALL_LABEL, *session.class_names]
    return st.selectbox("Class", options, index=state.kept_index(state.TUNE_CLASS, options, 1),
                        **state.keeps(state.TUNE_CLASS),
                        help="Edits on a class refit only that class; 'All classes' edits every class.")


def weight_table(session: Session, class_name: str) -> pd.DataFrame:
    """One row per concept, most influential first: group, weight, influence, spread."""
    return session.influence_table(None if class_name == ALL_LABEL else class_name)


def editor_key(class_name: str, rows: pd.Series, version: int | None = None) -> str:
    """A new widget for each class, edit version and row order (rows mean concepts by position)."""
    order = zlib.crc32("\0".join(map(str, rows)).encode())
    version = state.edit_version() if version is None else version
    return f"{state.WEIGHT_EDITOR}_{class_name}_{version}_{order:08x}"


def group_key(class_name: str) -> str:
    return f"{state.GROUP_EDITOR}_{class_name}_{state.edit_version()}"


EDIT_CONFIG = {
    "action": st.column_config.SelectboxColumn(options=ACTION_OPTIONS, required=True,
                                               help="— keeps the weight as the refit finds it"),
    # No client-side pattern: the grid dropped a text that failed it without a word; the page
    # names a bad number instead (apply_pending).
    "scale": st.column_config.TextColumn(help="downtune: 0–1 (blank = 0.2); uptune: above 1 (blank = 2)"),
    "magnitude": st.column_config.TextColumn(help="uptune of a weight at 0: its signed size, e.g. 0.5"),
}


def concept_editor(session: Session, cls: str, table: pd.DataFrame) -> None:
    """The weight table: choices go into the pending edits under their concept's name."""
    st.caption("Choose an action per concept: **downtune** (|w| ≤ scale·|w0|), **uptune** (|w| ≥ "
               "scale·|w0|; a signed magnitude when w0 is 0), **remove** (w = 0) or **lock** (w stays). "
               "Choices wait below until you press Apply; they stay with their concept when the table "
               "re-sorts.")
    key = editor_key(cls, table["concept"])
    shown = state.editor_base(key, lambda: edits.prefill(table, state.pending(), cls, "concept"))
    edited = st.data_editor(
        shown, key=key, hide_index=True, width="stretch", height=320,
        disabled=["concept", "group", "weight", "influence", "spread"],
        column_config={
            "concept": st.column_config.TextColumn(pinned=True),
            "weight": st.column_config.NumberColumn(format="%.3f", help="Member-mean weight"),
            "influence": st.column_config.NumberColumn(format="%.3f", help="|weight| × mean |standardized score|"),
            "spread": st.column_config.NumberColumn(format="%.3f", help="Std of the weight across members"),
            **EDIT_CONFIG,
        })
    state.set_pending(edits.merge(state.pending(), cls, "concept", edited))


def group_editor(session: Session, cls: str) -> None:
    """One action for a whole concept group (a corpus category, e.g. every background)."""
    groups = session.concept_groups()
    if len(groups) < 2:
        return
    frame = pd.DataFrame({"group": list(groups), "concepts": [", ".join(m) for m in groups.values()]})
    key = group_key(cls)
    shown = state.editor_base(key, lambda: edits.prefill(frame, state.pending(), cls, "group",
                                                         edits.GROUP_PREFIX).drop(columns="magnitude"))
    st.markdown(f"**Whole groups** on {escape(cls)}")
    edited = st.data_editor(shown, key=key, hide_index=True, width="stretch",
                            disabled=["group", "concepts"],
                            column_config={"concepts": st.column_config.TextColumn(width="large"),
                                           "action": EDIT_CONFIG["action"], "scale": EDIT_CONFIG["scale"]})
    state.set_pending(edits.merge(state.pending(), cls, "group", edited, edits.GROUP_PREFIX))


def hold_setting() -> float | None:
    """Whether other weights of the touched classes are held, and how tightly (TuneConfig)."""
    default = TuneConfig().hold_others
    c1, c2 = st.columns([3, 1])
    on = c1.checkbox("Hold the other concepts of the classes I edit (recommended)",
                     value=state.kept(state.HOLD_ON, default is not None), **state.keeps(state.HOLD_ON),
                     help="Without it the refit may hand a removed concept's role to correlated concepts "
                          "(another of its group, say) and quietly undo the edit. Held weights stay within "
                          "the band of their current value; a weight at zero stays zero.")
    band = c2.number_input("Band (±)", 0.0, 2.0, state.kept(state.HOLD_BAND, default or 0.25), 0.05,
                           **state.keeps(state.HOLD_BAND),
                           format="%.2f", disabled=not on, help="0.25 = each weight may move by ±25%")
    return float(band) if on else None


def apply_pending(session: Session, hold: float | None) -> None:
    """The pending edits in words, and one Apply (and Clear) for all of them. Choices already in
    effect are named and left out; a failed Apply stays on screen while its choices stay armed."""
    pending = state.pending()
    keys, lines = list(pending), edits.describe(pending)
    bad = edits.number_problems(pending)
    done = session.in_place(list(edits.to_actions_lenient(pending))) if pending else []
    todo = {k: pending[k] for k, in_place in zip(keys, done) if not in_place}
    skipped = [line for line, in_place in zip(lines, done) if in_place]
    c1, c2 = st.columns([3, 1])
    if todo:
        label = f"Apply {len(todo)} edit{'s' if len(todo) != 1 else ''}"
    else:
        label = "Nothing to apply: already in place" if pending else "Apply (choose an action first)"
    if bad:
        label = "Fix the numbers first"
    apply = c1.button(label, type="primary", disabled=not todo or bool(bad), key=state.BTN_APPLY, width="stretch")
    if c2.button("Clear choices", disabled=not pending, key=state.BTN_CLEAR_PENDING, width="stretch"):
        state.clear_pending()
        st.rerun()
    if lines:
        st.markdown("**Waiting to apply:** " + "; ".join(
            escape(line) + (" *(already in place: left out)*" if in_place else "")
            for line, in_place in zip(lines, done)))
    if bad:
        st.error("Not a number: " + "; ".join(escape(b) for b in bad) + ". Type a number such as 0.5, or "
                 "leave the cell blank for the default.", icon=":material/error:")
    problem = state.problem(state.BTN_APPLY, pending)
    if problem:
        st.error(problem, icon=":material/error:")
    if apply:
        with guarded("Applying the edits", keep=lambda m: state.set_problem(state.BTN_APPLY, m, dict(pending))):
            actions = edits.to_actions(todo)
            with st.spinner("Refitting the touched classes…"):
                session.tune(actions, label=f"{len(actions)} edit(s)", hold_others=hold)
                # No Streamlit call between the refit and these lines: a widget event arriving
                # meanwhile stops the run at the next Streamlit call, and must not find the
                # applied choices still armed or the notice unset.
                state.clear_pending()
                applied = [line for line, in_place in zip(lines, done) if not in_place]
                state.notify(f"Applied {len(actions)} edit(s): {'; '.join(applied)}."
                             + (f" Left out, already in place: {'; '.join(skipped)}." if skipped else "")
                             + " What changed is below.")
        st.rerun()  # after success (fresh table and notice) or failure (the message is kept)


def quick_edit(session: Session, cls: str, table: pd.DataFrame, hold: float | None) -> None:
    """One edit without the table, applied at once: a concept or a whole group."""
    groups = session.concept_groups()
    options = [edits.group_item(g) for g in groups if len(groups) > 1] + list(table["concept"])

    def label(item: str) -> str:
        if item.startswith(edits.GROUP_PREFIX):
            name = item.removeprefix(edits.GROUP_PREFIX)
            return f"group: {name} ({len(groups[name])} concepts)"
        return item

    with st.form("quick_edit", border=True):
        st.markdown(f"**Quick edit** on {escape(cls)} (applies at once)")
        c1, c2, c3 = st.columns(3)
        item = c1.selectbox("Concept or group (most influential first)", options, format_func=label,
                            index=options.index(table["concept"].iloc[0]), key=state.quick_concept_key(cls))
        kind = c2.selectbox("Action", KINDS, index=KINDS.index("downtune"), key=state.QUICK_ACTION)
        scale = c3.number_input("Scale (downtune, uptune)", 0.0, 100.0, 0.2, 0.05, key=state.QUICK_SCALE,
                                help="downtune: 0–1; uptune: above 1; remove and lock ignore it")
        chosen = (item, kind, scale)
        problem = state.problem(state.BTN_QUICK, (cls, *chosen))
        if problem:
            st.error(problem, icon=":material/error:")
        if st.form_submit_button("Apply this edit", type="primary", key=state.BTN_QUICK):
            one = {(cls, item): {"kind": kind, "scale": str(scale) if kind in edits.DEFAULT_SCALE else "",
                                 "magnitude": ""}}
            with guarded("Applying the edit", keep=lambda m: state.set_problem(state.BTN_QUICK, m, (cls, *chosen))):
                with st.spinner("Refitting…"):
                    session.tune(edits.to_actions(one), label=f"{kind} {label(item)} on {cls}",
                                 hold_others=hold)
                    state.bump_edit_version()  # the table re-sorts; pending choices stay with their concepts
                    state.clear_problems()
                    scaled = f" ×{scale:g}" if kind in edits.DEFAULT_SCALE else ""
                    state.notify(f"Applied: {kind} {label(item)}{scaled} on {cls}. What changed is below.")
            st.rerun()  # after success (fresh table and notice) or failure (the message is kept)


def measures(session: Session) -> list[tuple[str, str]]:
    """(label, metric key) for fidelity and accuracy on the held-out split and each evaluation set."""
    out = [("Fidelity (held-out)", "fidelity"), ("Accuracy (held-out)", "accuracy")]
    for name in session.eval_sets:
        out += [(f"Fidelity on {name}", f"{name}_fidelity"), (f"Accuracy on {name}", f"{name}_accuracy")]
    return out


def story_table(session: Session) -> pd.DataFrame:
    """Each measure at the fit, before the last step, now, and the change for both."""
    steps = session.provenance.steps
    fit, last = steps[0].metrics_after, steps[-1]
    rows = []
    for label, key in measures(session):
        now, before, at_fit = last.metrics_after.get(key), last.metrics_before.get(key), fit.get(key)
        if now is None:
            continue
        rows.append({"measure": label, "at the fit": at_fit, "before the last step": before, "now": now,
                     "last step (pts)": None if before is None else round(100 * (now - before), 1),
                     "since the fit (pts)": None if at_fit is None else round(100 * (now - at_fit), 1)})
    return pd.DataFrame(rows)


def what_changed(session: Session) -> None:
    """The last step's result: every measure since the fit, what took over, per class."""
    if len(session.provenance) < 2:
        return
    step = session.provenance.steps[-1]
    st.subheader(f"Last step: {escape(step.label or 'edit')}")
    pts = st.column_config.NumberColumn(format="%+.1f")
    st.dataframe(story_table(session), hide_index=True, width="stretch",
                 column_config={**{k: PCT for k in ("at the fit", "before the last step", "now")},
                                "last step (pts)": pts, "since the fit (pts)": pts})
    took_over = session.compensation(-1)
    if step.hold_others is not None and step.actions:
        st.caption(f"The other weights of {escape(', '.join(step.touched_classes))} were held within "
                   f"±{step.hold_others:.0%} of their values.")
    if took_over:
        lines = [f"**{escape(r['concept'])}** on {escape(r['class'])}: {r['before']:+.2f} → {r['after']:+.2f}"
                 for r in took_over]
        message = "Took over after the refit (grew most in magnitude): " + "; ".join(lines) + "."
        if step.hold_others is None:
            st.warning(message + " The refit may have handed the edited concept's role to these. Undo and "
                       "apply again with *Hold the other concepts* on, or edit them too.", icon=":material/warning:")
        else:
            st.caption(message)
    per_class_table(session)


def per_class_table(session: Session) -> None:
    fit, now = session.provenance.steps[0].metrics_after, session.provenance.steps[-1].metrics_after
    rows = []
    for c, name in enumerate(session.class_names):
        row = {"class": name, "F1 vs teacher, fit": fit["per_class"][c]["f1"], "now": now["per_class"][c]["f1"]}
        for split in session.eval_sets:
            key = f"{split}_per_class_accuracy"
            if now.get(key):
                row[f"accuracy on {split}, fit"] = fit[key][c] if fit.get(key) else None
                row[f"accuracy on {split}, now"] = now[key][c]
        rows.append(row)
    with st.expander("Per class"):
        frame = pd.DataFrame(rows)
        st.dataframe(frame, hide_index=True, width="stretch",
                     column_config={k: PCT for k in frame.columns if k != "class"})


def changed_gallery(session: Session, limit: int = 12) -> None:
    """Images whose student answer changed since the fit, now right or now wrong."""
    if len(session.provenance) < 2:
        return
    names = session.class_names
    for split in [None, *session.eval_sets]:
        image = session.image if split is None else session.eval_sets[split].images.image  # None: no pixels
        changed = session.changed_since_fit(split)
        where = "held-out images" if split is None else f"images of {escape(split)}"
        if not len(changed["rows"]):
            st.caption(f"No student answer on the {where} changed since the fit.")
            continue
        known = changed["label"] >= 0
        right = known & (changed["now"] == changed["label"])
        wrong = known & (changed["before"] == changed["label"])
        n, other = len(changed["rows"]), int((known & ~right & ~wrong).sum())
        st.markdown(f"**{n} answer{'s' if n != 1 else ''} changed on the {where} since the fit:** "
                    f"{int(right.sum())} now right, {int(wrong.sum())} now wrong"
                    + (f", {other} from one wrong class to another" if other else "")
                    + (f", {int((~known).sum())} without a label" if (~known).any() else "") + ".")
        for title, mask in (("Now right", right), ("Now wrong", wrong)):
            shown = [(i, image(int(changed["rows"][i]))) for i in np.flatnonzero(mask)[:limit]]
            shown = [(i, im) for i, im in shown if im is not None]  # a store's unreadable paths
            if shown:
                st.caption(title)
                st.image([im for _, im in shown], width=72, caption=[
                    f"{names[changed['before'][i]]} → {names[changed['now'][i]]} (true: {names[changed['label'][i]]})"
                    for i, _ in shown])


def provenance(session: Session) -> None:
    st.subheader("Provenance")
    table = pd.DataFrame(session.provenance.table())
    table["held"] = [f"±{h:.0%}" if h is not None and h == h else "" for h in table["held"]]
    names = {c: f"accuracy on {c.removesuffix('_accuracy')}" for c in table.columns
             if c.endswith("_accuracy") and c != "accuracy"}
    table = table.rename(columns=names)
    rates = ["fidelity", "accuracy", *names.values()]
    st.dataframe(table[["step", "actions", *rates, "held", "label"]], hide_index=True, width="stretch",
                 column_config={"step": st.column_config.NumberColumn(width="small", pinned=True),
                                "actions": st.column_config.TextColumn(width="large", pinned=True),
                                "held": st.column_config.TextColumn(help="hold-others band of the step"),
                                **{c: PCT for c in rates}})
    c1, c2, c3 = st.columns([2, 1, 1])
    pick = c1.selectbox("Restore step", list(range(len(session.provenance))), key=state.RESTORE_PICK,
                        format_func=lambda i: f"step {i}: {session.provenance.table()[i]['actions']}")
    if c2.button("Restore", width="stretch", key=state.BTN_RESTORE):
        with guarded("Restoring"):
            session.restore(int(pick))
            state.clear_pending()
            state.notify(f"Restored step {pick} (logged as a new step; nothing was deleted).")
            st.rerun()
    if c3.button("Undo last step", width="stretch", key=state.BTN_UNDO, disabled=len(session.provenance) < 2):
        with guarded("Undoing"):
            step = session.undo()
            state.clear_pending()
            state.notify(f"{step.label.capitalize()}: back to the weights before it (logged as a new step).")
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
    if session.dataset is not None:
        st.caption("To ship this student's behaviour, repairs included, without the CLIP image tower: "
                   "**Distill** page → *Compact CNN* → *The concept student, with your edits* trains a small "
                   "CNN that answers like it and exports ONNX and `.pt2`.")


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
