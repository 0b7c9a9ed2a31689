"""Data & teacher: choose a dataset, look at it, run a teacher."""

import streamlit as st

from infi.ui import exercise_view, state
from infi.ui.data_view import (
    dataset_overview,
    dataset_picker,
    detached_dataset_notice,
    store_overview,
    teacher_picker,
    teacher_summary,
)
from infi.ui.entry import through_app
from infi.ui.replacing import open_question

through_app()  # a page's own URL on a fresh server: run it inside app.py's navigation

st.title("Data & teacher")
session = state.get_session()
open_question(session)  # a step that would drop a tuned student asks first
hiding = exercise_view.hiding(session)
if hiding:  # the pickers name every scenario: during an exercise only its own data and teacher show
    st.info(f"**{exercise_view.active(session).title}** is loaded: its images are below, and its teacher is "
            "the only one offered. To load other data, reveal the answer or start another exercise "
            "(Classroom exercise page).")
else:
    with st.expander("Choose a dataset", expanded=session.dataset is None):
        dataset_picker(session)
if session.dataset is None and session.store is None and session.dataset_ref:
    detached_dataset_notice(session)
    st.stop()
if session.dataset is None and session.store is None:
    st.info("No dataset yet. New here? Keep **Shapes World** selected and press **Load Shapes "
            "World**: it works offline and its concepts are known.")
    st.stop()
if session.store is not None and session.dataset is None:
    store_overview(session)
else:
    dataset_overview(session)
if hiding:
    exercise_view.teacher_panel(session)
else:
    teacher_picker(session)
if session.P is None:
    st.info("Next: run a teacher to get its class probabilities for every image.")
else:
    teacher_summary(session)
    st.success("Teacher ready. Next: the **Concepts** page.")
