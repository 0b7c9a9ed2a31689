"""Fine-tune: edit concept influences (by concept or group), refit, see what changed, keep
provenance, export."""

import streamlit as st

from infi.ui import finetune_view as view
from infi.ui import state
from infi.ui.entry import through_app
from infi.ui.replacing import open_question

through_app()  # a page's own URL on a fresh server: run it inside app.py's navigation

st.title("Fine-tune")
session = state.get_session()
open_question(session)  # a step that would drop a tuned student asks first
if session.student is None:
    st.info("Distill a student on the **Distill** page first; then tune its concepts here.")
    st.stop()
cls = view.class_picker(session)
hold = view.hold_setting()
table = view.weight_table(session, cls)  # once per run: the editor and the quick edit share it
view.concept_editor(session, cls, table)
view.group_editor(session, cls)
view.apply_pending(session, hold)
view.quick_edit(session, cls, table, hold)
view.what_changed(session)
view.changed_gallery(session)
view.provenance(session)
view.downloads(session)
