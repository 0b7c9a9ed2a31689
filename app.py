"""Infi: concept-based knowledge distillation. Navigation, sidebar status and session save/load."""

import logging

import streamlit as st

from infi.ui import state
from infi.ui.sidebar import render_sidebar

logging.basicConfig(level=logging.INFO)
st.set_page_config(page_title="Infi", page_icon=":material/hub:", layout="wide")
pages = [
    st.Page("pages/data.py", title="Data & teacher", icon=":material/folder_open:", default=True),
    st.Page("pages/concepts.py", title="Concepts", icon=":material/label:"),
    st.Page("pages/distill.py", title="Distill", icon=":material/science:"),
    st.Page("pages/finetune.py", title="Fine-tune", icon=":material/tune:"),
]
navigation = st.navigation(pages)
session = state.get_session()
render_sidebar(session)
notice = state.pop_notice()
if notice:
    st.toast(notice)
    st.info(notice)
navigation.run()
