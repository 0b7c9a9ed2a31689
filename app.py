"""Infi: concept-based knowledge distillation. Navigation, sidebar status and session save/load."""

import logging
from pathlib import Path

import streamlit as st

from infi.demo.plugin import register as register_demo
from infi.ui import state
from infi.ui.autosave import autosave
from infi.ui.markdown import escape
from infi.ui.sidebar import render_sidebar

HERE = Path(__file__).resolve().parent  # pages by absolute path: deploy/streamlit_app.py runs this too
logging.basicConfig(level=logging.INFO)
register_demo()  # also when running from a checkout that was never pip-installed
FAVICON = HERE / "infi/ui/assets/favicon.png"  # bundled: a :material: icon is fetched from a font host
st.set_page_config(page_title="Infi", page_icon=str(FAVICON), layout="wide")
# An instructor's link is the app's address plus ?exercise=N: the exercise page is then the default.
exercise_link = "exercise" in st.query_params
pages = [
    st.Page(HERE / "pages/data.py", title="Data & teacher", icon=":material/folder_open:", default=not exercise_link),
    st.Page(HERE / "pages/concepts.py", title="Concepts", icon=":material/label:"),
    st.Page(HERE / "pages/distill.py", title="Distill", icon=":material/science:"),
    st.Page(HERE / "pages/finetune.py", title="Fine-tune", icon=":material/tune:"),
    st.Page(HERE / "pages/exercise.py", title="Classroom exercise", icon=":material/school:", default=exercise_link),
]
navigation = st.navigation(pages)
session = state.get_session()
autosave(session)  # the step a page ran last time ended in st.rerun(), so save at the start
render_sidebar(session)
notice = state.pop_notice()
slot = st.container()  # always there: a notice must not shift the page's elements (an open expander
if notice:             # below it was re-created closed on the next run)
    slot.info(escape(notice))  # notices are plain text and may hold names a person chose
navigation.run()
