"""Fine-tune: edit concept influences, refit, compare, keep provenance, export."""

import streamlit as st

from infi.ui import state
from infi.ui.finetune_view import apply_edits, deltas, downloads, editor, provenance

st.title("Fine-tune")
session = state.get_session()
if session.student is None:
    st.info("Distill a student on the **Distill** page first; then tune its concepts here.")
    st.stop()
cls, edited = editor(session)
apply_edits(session, cls, edited)
deltas(session)
provenance(session)
downloads(session)
