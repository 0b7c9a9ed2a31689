"""PRG on the Distill page: settings, live curves, results, size/latency and exports."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from infi.config import PRGConfig
from infi.encoders import DEFAULT_ENCODER
from infi.session import Session
from infi.ui import charts, state
from infi.ui.feedback import guarded, progress_status
from infi.ui.resources import encoder

METHOD_LABEL = "PRG: compact CNN from CLIP zero-shot (no labels)"
TERMS = ("node", "edge", "relation", "pseudo")


def settings_and_run(session: Session) -> None:
    st.caption("A CLIP zero-shot teacher (the encoder chosen on the Concepts page, else the demo "
               "encoder) is distilled into a compact CNN. No label is read during training.")
    d = PRGConfig()
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("Epochs", 1, 200, state.kept(state.PRG_EPOCHS, d.epochs), **state.keeps(state.PRG_EPOCHS),
                             help=PRGConfig.describe("epochs")["help"])
    arch = c2.selectbox("Student", PRGConfig.describe("arch")["choices"], key=state.PRG_ARCH,
                        help=PRGConfig.describe("arch")["help"])
    lr = c3.number_input("Learning rate", 1e-5, 1.0, state.kept(state.PRG_LR, d.lr), 1e-4, format="%.4f",
                         **state.keeps(state.PRG_LR))
    batch = c4.number_input("Batch size", 4, 1024, state.kept(state.PRG_BATCH, d.batch_size),
                            **state.keeps(state.PRG_BATCH))
    weights = st.data_editor(pd.DataFrame({"term": list(TERMS), "weight": [getattr(d, f"w_{t}") for t in TERMS],
                                           "on": [True] * 4}),
                             key=state.PRG_WEIGHTS, hide_index=True, disabled=["term"])
    t1, t2 = st.columns(2)
    tau_e = t1.number_input("τ edge (proxies)", 0.001, 10.0, d.tau_edge, format="%.3f", key=state.PRG_TAU_EDGE,
                            help=PRGConfig.describe("tau_edge")["help"])
    tau_r = t2.number_input("τ relation (samples)", 0.001, 10.0, d.tau_relation, format="%.3f",
                            key=state.PRG_TAU_REL, help=PRGConfig.describe("tau_relation")["help"])
    classes = st.text_input("Class names", ", ".join(session.dataset.class_names or ()), key=state.PRG_CLASSES)
    if st.button("Distill with PRG", type="primary", key=state.BTN_PRG):
        w = {row["term"]: float(row["weight"]) if row["on"] else 0.0 for _, row in weights.iterrows()}
        config = PRGConfig(epochs=int(epochs), arch=arch, lr=float(lr), batch_size=int(batch),
                           w_node=w["node"], w_edge=w["edge"], w_relation=w["relation"],
                           w_pseudo=w["pseudo"], tau_edge=float(tau_e), tau_relation=float(tau_r))
        status, report = progress_status("Running the zero-shot teacher…")
        chart = st.empty()
        history: list[dict] = []

        def on_epoch(record: dict) -> None:
            history.append(record)
            status.update(label=f"Epoch {record['epoch']}/{config.epochs}: agreement "
                                f"{record['val_agreement']:.1%}")
            keep = ["epoch", "loss", "val_agreement"]
            chart.altair_chart(charts.loss_curves([{k: h[k] for k in keep} for h in history],
                                                  "PRG: loss and teacher agreement"), width="stretch")

        with guarded("PRG distillation"):
            encoder(session.encoder_id or DEFAULT_ENCODER)
            session.run_prg(config, classes, progress=on_epoch, teacher_progress=report)
            status.update(label="PRG student ready", state="complete")
            state.notify("PRG student trained; results below.")
            st.rerun()
        status.update(label="PRG failed", state="error")


def results(session: Session) -> None:
    run = session.prg_run
    f = run.figures
    cols = st.columns(4)
    cols[0].metric("Agreement with teacher", f"{f['teacher_agreement']:.1%}")
    if "student_accuracy" in f:
        cols[1].metric("Student accuracy", f"{f['student_accuracy']:.1%}")
        cols[2].metric("Zero-shot teacher accuracy", f"{f['teacher_accuracy']:.1%}")
    cols[3].metric("Best epoch", run.result.best_epoch)
    keep = ["epoch", "loss", "val_agreement"]
    st.altair_chart(charts.loss_curves([{k: h[k] for k in keep} for h in run.result.history],
                                       "PRG: loss and teacher agreement"), width="stretch")
    rows = [{"model": f"PRG student ({run.result.config.arch})", "parameters": f["student_parameters"],
             "ms per image (this machine)": round(f["student_ms_per_image"], 2)}]
    if "teacher_parameters" in f:
        rows.insert(0, {"model": f"teacher image encoder ({f['teacher_encoder']})",
                        "parameters": f["teacher_parameters"],
                        "ms per image (this machine)": round(f["teacher_ms_per_image"], 2)})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
        "parameters": st.column_config.NumberColumn(format="localized"),
        "ms per image (this machine)": st.column_config.NumberColumn(format="%.2f")})
    if f.get("teacher_encoder") == "demo":
        st.caption("The demo encoder is a deliberately tiny CLIP made for Shapes World, so here the "
                   "student is not smaller than it. On photos the teacher is a real CLIP: against "
                   "ViT-B/32 (88M parameters) the ResNet-18-style student is about 51× smaller and "
                   "12–19× faster per image on CPU (`benchmarks/prg.py`).")
    with guarded("Preparing the PRG export"):
        st.download_button("Download the PRG student (safetensors + card + ONNX + .pt2)", run.export_zip(),
                           "prg_student.zip")
