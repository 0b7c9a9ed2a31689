"""Distill: a concept student that mimics the teacher, or a compact CNN of any source."""

import streamlit as st

from infi.ui import distill_view, prg_view, state
from infi.ui.entry import through_app
from infi.ui.replacing import open_question

through_app()  # a page's own URL on a fresh server: run it inside app.py's navigation

CONCEPT, COMPACT = distill_view.METHOD_LABEL, prg_view.METHOD_LABEL

st.title("Distill")
session = state.get_session()
open_question(session)  # a step that would drop a tuned student asks first
if session.dataset is None and session.concepts is None:
    st.info("Load a dataset on the **Data & teacher** page first.")
    st.stop()
method = st.radio("Method", (CONCEPT, COMPACT), index=state.kept_index(state.METHOD, (CONCEPT, COMPACT)),
                  horizontal=True,
                  **state.keeps(state.METHOD))
if method == COMPACT and session.dataset is None:
    st.info("The compact model trains on the images themselves: load them on the **Data & teacher** page ("
            + ("an embedding store holds embeddings, not pixels)." if session.store is not None else
               "this session came from a bundle, which stores concepts and outputs, not images)."))
    st.stop()
if method == COMPACT:
    with st.expander("Compact model settings", expanded=session.prg_run is None):
        prg_view.settings_and_run(session)
    if session.prg_run is None:
        st.info("Next: choose what it learns from and press **Train the compact model**.")
    else:
        prg_view.results(session)
    st.stop()
if session.P is None or session.concepts is None:
    missing = [name for name, ok in (("run a teacher (Data & teacher)", session.P is not None),
                                     ("extract concepts (Concepts)", session.concepts is not None)) if not ok]
    st.info("Before distilling: " + " and ".join(missing) + ".")
    st.stop()
with st.expander("Concept student settings", expanded=session.student is None):
    distill_view.settings_and_run(session)
if session.student is None:
    st.info("Next: press **Distill the concept student**.")
    st.stop()
result = session.evaluate()
distill_view.headline(session, result)
distill_view.low_fidelity_advice(session, result)
distill_view.nec_path(session)
distill_view.linked_views(session, result)
