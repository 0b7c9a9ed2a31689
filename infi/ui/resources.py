"""Shared read-only models through ``st.cache_resource``: encoders and the demo teacher.

Only models live here; anything derived from a user's data stays in that user's session state.
"""

from __future__ import annotations

import streamlit as st

from infi import session as session_mod
from infi.encoders import ClipEncoder
from infi.teachers import DemoTeacherAdapter


@st.cache_resource(show_spinner="Loading the encoder…", max_entries=3)
def encoder(name: str) -> ClipEncoder:
    enc = ClipEncoder.load(name)
    session_mod._ENCODERS[name] = enc  # the Session reuses the same loaded model
    return enc


@st.cache_resource(show_spinner="Loading the demo teacher…")
def demo_teacher() -> DemoTeacherAdapter:
    return DemoTeacherAdapter()
