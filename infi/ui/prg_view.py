"""The compact model on the Distill page: a small CNN from the concept student (edits included),
the teacher or CLIP zero-shot; live progress, the comparison a person needs, and the exports."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from infi.config import PRGConfig
from infi.encoders import DEFAULT_ENCODER
from infi.export import ONNX_SNIPPET
from infi.session import Session
from infi.ui import charts, state
from infi.ui.feedback import guarded, progress_status
from infi.ui.markdown import escape
from infi.ui.resources import encoder

METHOD_LABEL = "Compact CNN: a small deployable model (from the student, the teacher or CLIP zero-shot)"
TERMS = ("node", "edge", "relation", "pseudo")
SOURCE_LABELS = {
    "student": "The concept student, with your edits",
    "teacher": "The teacher",
    "zero-shot": "CLIP zero-shot over class names",
}
SOURCE_PHRASES = {  # inside a sentence
    "student": "the concept student (with your edits)",
    "teacher": "the teacher",
    "zero-shot": "CLIP zero-shot over class names",
}
METHODS = {"kd": "KD (vanilla knowledge distillation)", "prg": "PRG (proxy relational graph)"}
# Measured on the demo world with mixed views (benchmarks/compact.py): KD kept more of a repair.
DEFAULTS = {"student": ("kd", 8), "teacher": ("kd", 8), "zero-shot": ("prg", 0)}


def available_sources(session: Session) -> tuple[list[str], list[str]]:
    """(sources that can run now, one line per source that cannot and why)."""
    ready, why = [], []
    for source, missing in (("student", session.student is None and "extract concepts, then distill a concept "
                                                                    "student"),
                            ("teacher", session.P is None and "run a teacher on the Data & teacher page"),
                            ("zero-shot", False)):
        if missing:
            why.append(f"{SOURCE_PHRASES[source]} (first {missing}).")
        else:
            ready.append(source)
    return ready, why


def settings_and_run(session: Session) -> None:
    st.caption("A small CNN learns to answer like the source you choose, from the loaded images and mixed "
               "views of them (a box of one image pasted onto another) that the source labels. No label is "
               "read during training. Learning from the concept student after your edits carries a repair, "
               "like a removed shortcut, into a model small enough to ship.")
    ready, why = available_sources(session)
    source = st.radio("Learn from", ready, index=state.kept_index(state.COMPACT_SOURCE, ready),
                      format_func=SOURCE_LABELS.get, horizontal=True, **state.keeps(state.COMPACT_SOURCE))
    if why:
        st.caption("Not available yet: " + "; ".join(why))
    d = PRGConfig()
    method_default, views_default = DEFAULTS[source]
    m1, m2 = st.columns(2)
    method_key, views_key = state.compact_method_key(source), state.compact_views_key(source)
    method = m1.selectbox("Method", list(METHODS), format_func=METHODS.get,
                          index=state.kept_index(method_key, list(METHODS), list(METHODS).index(method_default)),
                          **state.keeps(method_key),
                          help="KD matches the source's probabilities; PRG also aligns the CNN's features with "
                               "CLIP's image embeddings and its class proxies.")
    views = m2.number_input("Mixed views per image", 0, 16, state.kept(views_key, views_default),
                            **state.keeps(views_key),
                            help="Views labelled by the source and added to training; each costs one source "
                                 "call (a CLIP forward) and one more image per epoch. They keep a repair: on "
                                 "the demo world the shifted-split accuracy of a compact model of the repaired "
                                 "student went from 18% with none to 94% with 6.")
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("Epochs", 1, 200, state.kept(state.PRG_EPOCHS, d.epochs), **state.keeps(state.PRG_EPOCHS),
                             help=PRGConfig.describe("epochs")["help"])
    arches = PRGConfig.describe("arch")["choices"]
    arch = c2.selectbox("CNN architecture", arches, index=state.kept_index(state.PRG_ARCH, arches),
                        **state.keeps(state.PRG_ARCH), help=PRGConfig.describe("arch")["help"])
    lr = c3.number_input("Learning rate", 1e-5, 1.0, state.kept(state.PRG_LR, d.lr), 1e-4, format="%.4f",
                         **state.keeps(state.PRG_LR))
    batch = c4.number_input("Batch size", 4, 1024, state.kept(state.PRG_BATCH, d.batch_size),
                            **state.keeps(state.PRG_BATCH))
    weights, tau_e, tau_r = None, d.tau_edge, d.tau_relation
    if method == "prg":
        weights = st.data_editor(pd.DataFrame({"term": list(TERMS), "weight": [getattr(d, f"w_{t}") for t in TERMS],
                                               "on": [True] * 4}),
                                 key=state.PRG_WEIGHTS, hide_index=True, disabled=["term"])
        t1, t2 = st.columns(2)
        tau_e = t1.number_input("τ edge (proxies)", 0.001, 10.0, state.kept(state.PRG_TAU_EDGE, d.tau_edge),
                                format="%.3f", **state.keeps(state.PRG_TAU_EDGE),
                                help=PRGConfig.describe("tau_edge")["help"])
        tau_r = t2.number_input("τ relation (samples)", 0.001, 10.0, state.kept(state.PRG_TAU_REL, d.tau_relation),
                                format="%.3f", **state.keeps(state.PRG_TAU_REL),
                                help=PRGConfig.describe("tau_relation")["help"])
    classes = None
    if source == "zero-shot":
        default_names = ", ".join(session.dataset.class_names or ())
        classes = st.text_input("Class names", state.kept(state.PRG_CLASSES, default_names),
                                **state.keeps(state.PRG_CLASSES), help="Comma-separated; the zero-shot prompts "
                                "are built from them. Left empty, the dataset's class names are used (and said).")
    if st.button("Train the compact model", type="primary", key=state.BTN_PRG):
        w = ({row["term"]: float(row["weight"]) if row["on"] else 0.0 for _, row in weights.iterrows()}
             if weights is not None else {t: getattr(d, f"w_{t}") for t in TERMS})
        with guarded("Compact model settings"):
            config = PRGConfig(method=method, epochs=int(epochs), arch=arch, lr=float(lr), batch_size=int(batch),
                               w_node=w["node"], w_edge=w["edge"], w_relation=w["relation"],
                               w_pseudo=w["pseudo"], tau_edge=float(tau_e), tau_relation=float(tau_r))
            config.validate()
            train(session, source, config, int(views), classes)


def train(session: Session, source: str, config: PRGConfig, views: int, classes: str | None) -> None:
    status, report = progress_status(f"Training a compact model from {SOURCE_PHRASES[source]}…")
    chart = st.empty()
    history: list[dict] = []

    def on_views(done: int, total: int) -> None:
        report(done, total)
        status.update(label=f"Labelling mixed views: {done:,} of {total:,} ({done / max(total, 1):.0%})")

    def on_epoch(record: dict) -> None:
        history.append(record)
        status.update(label=f"Epoch {record['epoch']}/{config.epochs}: agreement with the source "
                            f"{record['val_agreement']:.1%}")
        chart.altair_chart(charts.loss_curves(curve_rows(history),
                                              "Compact model: loss and agreement with the source",
                                              "Held-out agreement with the source"), width="stretch")

    with guarded("Training the compact model"):
        encoder(session.encoder_id or DEFAULT_ENCODER)
        session.compact(source, config, views=views, class_names=classes, progress=on_epoch, view_progress=on_views)
        status.update(label="Compact model ready", state="complete")
        state.notify("Compact model trained; the comparison is below.")
        st.rerun()
    status.update(label="The compact model could not be trained", state="error")


def curve_rows(history: list[dict]) -> list[dict]:
    """Loss and held-out agreement per epoch, named for the chart's legend."""
    return [{"epoch": h["epoch"], "loss": h["loss"], "held-out agreement": h["val_agreement"]} for h in history]


def repair_warnings(figures: dict) -> list[str]:
    """Splits where the compact model answers far worse than its source (a repair not carried)."""
    out, views = [], figures.get("views_per_image", 0)
    for key, compact_acc in figures.items():
        if key.endswith("_compact_accuracy") and key != "loaded_compact_accuracy" and compact_acc is not None:
            split = key[: -len("_compact_accuracy")]
            source_acc = figures.get(f"{split}_source_accuracy")
            if source_acc is not None and source_acc - compact_acc > 0.10:
                out.append(f"On '{split}' the compact model reaches {compact_acc:.1%} against its source's "
                           f"{source_acc:.1%}: it did not learn the source's behaviour there (a shortcut in the "
                           f"training images, most likely). More mixed views per image and more epochs usually "
                           f"help (this run: {views} mixed view{'s' if views != 1 else ''} per image; the default 8 "
                           "kept a repair on the demo world: 94% against the source's 99.6%).")
    return out


def accuracy_table(figures: dict) -> pd.DataFrame:
    """One row per labelled split: the source, the compact model and the teacher, as percentages."""
    rows = {}
    for key, value in figures.items():
        for who in ("source", "compact", "teacher"):
            suffix = f"_{who}_accuracy"
            if key.endswith(suffix) and value is not None:
                split = key[: -len(suffix)]
                split = "loaded images (seen in training, labels unread)" if split == "loaded" else split
                rows.setdefault(split, {"split": split})[who] = 100 * value
    columns = {"source": "source %", "compact": "compact model %", "teacher": "teacher %"}
    return pd.DataFrame(list(rows.values())).rename(columns=columns)


def cost_table(run) -> pd.DataFrame:
    """Parameters and CPU latency of the compact model against what it replaces."""
    f = run.figures
    rows = [(f"compact model ({run.result.config.arch} CNN, {run.image_size}×{run.image_size})",
             f["student_parameters"], f["student_ms_per_image"])]
    if "tower_parameters" in f:
        if f.get("source") == "zero-shot":
            rows.append((f"CLIP zero-shot: image tower ({f['tower_encoder']})", f["tower_parameters"],
                         f["tower_ms_per_image"]))
        else:
            rows.append((f"concept student: CLIP image tower ({f['tower_encoder']}) + concept head",
                         f["tower_parameters"] + f.get("head_parameters", 0), f["tower_ms_per_image"]))
    if "teacher_ms_per_image" in f:
        rows.append(("teacher (its whole prediction, preprocessing included)", f.get("teacher_parameters"),
                     f["teacher_ms_per_image"]))
    return pd.DataFrame(rows, columns=["model", "parameters", "ms per image (this machine)"])


def results(session: Session) -> None:
    run = session.prg_run
    f = run.figures
    source = f.get("source", "zero-shot")
    views = f.get("views_per_image", 0)
    st.markdown(f"**Compact model learned from {escape(SOURCE_PHRASES.get(source, source))}** "
                f"({METHODS.get(run.result.config.method, run.result.config.method)}, "
                f"{views} mixed view{'s' if views != 1 else ''} per image).")
    if f.get("source_fingerprint") not in (None, session.source_fingerprint(source)):
        st.warning(f"Its source, {SOURCE_PHRASES.get(source, source)}, changed after this compact model was "
                   "trained (an edit or a new run), so it still answers like before. Train it again to carry "
                   "the change.",
                   icon=":material/history:")
    for warning in repair_warnings(f):
        st.warning(escape(warning), icon=":material/warning:")
    for note in f.get("notes", []):
        st.warning(escape(note), icon=":material/info:")
    cols = st.columns(3)
    cols[0].metric("Agreement with the source", f"{f['agreement_with_source']:.1%}",
                   help="Share of all loaded images where the compact model and the source give the same class "
                        "(the chart's held-out agreement is on the 10% kept aside for early stopping).")
    cols[1].metric("Best epoch", run.result.best_epoch)
    cols[2].metric("Parameters", f"{f['student_parameters']:,}")
    accuracy = accuracy_table(f)
    if not accuracy.empty:
        st.markdown("**Accuracy on each labelled split** (labels are read only here, after training)")
        st.dataframe(accuracy, hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.1f%%")
                                    for c in accuracy.columns if c != "split"})
    else:
        st.caption("No labelled images or evaluation split, so accuracy cannot be shown; agreement above is "
                   "what the compact model is trained for.")
    st.altair_chart(charts.loss_curves(curve_rows(run.result.history),
                                       "Compact model: loss and agreement with the source",
                                              "Held-out agreement with the source"), width="stretch")
    st.markdown("**What deploying each costs**")
    st.dataframe(cost_table(run), hide_index=True, width="stretch", column_config={
        "parameters": st.column_config.NumberColumn(format="localized"),
        "ms per image (this machine)": st.column_config.NumberColumn(format="%.2f")})
    if f.get("tower_encoder") == "demo":
        st.caption("The demo encoder is a deliberately tiny CLIP made for Shapes World, so here the "
                   "compact model is not smaller than it. With a real CLIP the concept student needs the "
                   "ViT-B/32 image tower (88M parameters): the compact model is about 250× smaller and "
                   "over 10× faster per image on CPU (`benchmarks/compact.py`).")
    with guarded("Preparing the export"):
        st.download_button("Download the compact model (ONNX + .pt2 + safetensors + card)", run.export_zip(),
                           "compact_model.zip")
    with st.expander("Run the exported model with onnxruntime"):
        st.code(ONNX_SNIPPET, language="python")
