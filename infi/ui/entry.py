"""Pages run inside app.py's navigation, also when a page's own URL is the first request a
freshly started server sees (Streamlit then runs that page alone, from the pages/ folder)."""

from __future__ import annotations

import runpy
from pathlib import Path

import streamlit as st

APP = Path(__file__).resolve().parents[2] / "app.py"


def through_app() -> None:
    """Call first in every page: in Streamlit's pages-folder mode, run app.py instead (its
    navigation then runs this page, with the sidebar), and stop this bare run."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        runpy.run_path(str(APP), run_name="__main__")
        st.stop()
