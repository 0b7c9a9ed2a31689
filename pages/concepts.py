"""Concepts: encoder, concept list and region mode; extraction; browsing the concept scores."""

import streamlit as st

from infi.ui import state
from infi.ui.concepts_view import (
    concept_table,
    corpus_editor,
    encoder_picker,
    extraction,
    heatmap,
    image_inspector,
    top_images,
    uninformative_concepts,
)
from infi.ui.entry import through_app
from infi.ui.markdown import escape
from infi.ui.replacing import open_question

through_app()  # a page's own URL on a fresh server: run it inside app.py's navigation

st.title("Concepts")
session = state.get_session()
open_question(session)  # a step that would drop a tuned student asks first
on_store = session.dataset is None and session.store is not None  # embeddings, no pixels
detached = session.dataset is None and not on_store and session.concepts is not None  # loaded from a bundle
if session.dataset is None and not detached and not on_store:
    st.info("Load a dataset on the **Data & teacher** page first.")
    st.stop()
if not detached:
    with st.expander("Encoder, concepts and regions", expanded=session.concepts is None):
        if on_store:
            encoder_id = session.store.encoder
            st.caption(f"Encoder: {escape(encoder_id)}, the one the embedding store was made with (its images "
                       "are not loaded, so another encoder cannot embed them).")
        else:
            encoder_id = encoder_picker()
        corpus = corpus_editor(session)
        extraction(session, encoder_id, corpus)
if session.concepts is None:
    st.info("Next: press **Extract concepts** to score every image on every concept.")
    st.stop()
st.caption(f"Encoder: {escape(session.encoder_id)} · regions: {session.concepts.mode}"
           + (f" ({session.dense})" if session.concepts.mode != "global" else "") + " · "
           f"{session.concepts.X.shape[1]} concepts × {session.concepts.X.shape[0]} images")
uninformative_concepts(session)
concept_table(session)
heatmap(session)
if detached:
    st.info("The images of this session are not loaded (it came from a bundle), so top images "
            "and patch overlays are hidden; load the same images on **Data & teacher** to see them.")
elif on_store:
    top_images(session)
else:
    left, right = st.columns(2)
    with left:
        top_images(session)
    with right:
        image_inspector(session)
if session.P is None:
    st.info("Run a teacher on the **Data & teacher** page to distill a student.")
else:
    st.success("Concepts ready. Next: the **Distill** page.")
