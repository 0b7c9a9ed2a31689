"""Exercise: a classroom exercise whose planted shortcut stays hidden until Reveal."""

import streamlit as st

from infi.ui import exercise_view as view
from infi.ui import state
from infi.ui.entry import through_app
from infi.ui.replacing import open_question

through_app()  # a page's own URL on a fresh server: run it inside app.py's navigation

st.title("Classroom exercise")
session = state.get_session()
open_question(session)  # starting an exercise over a tuned student asks first
exercise = view.active(session)
with st.expander("Start an exercise" if exercise is None else "Start another exercise", expanded=exercise is None):
    view.start_picker(session)
if exercise is None:
    st.stop()
st.header(exercise.title)
view.checklist(session, exercise)
view.diagnosis_form(session, exercise)
view.reveal_button(session, exercise)
view.reveal(session, exercise)
