"""Shared read-only models through ``st.cache_resource``: encoders and the demo teacher.

Only models live here; anything derived from a user's data stays in that user's session state.
"""

from __future__ import annotations

import streamlit as st

from infi import session as session_mod
from infi.encoders import DEMO_ENCODER, ClipEncoder
from infi.hub import is_hub_id
from infi.teachers import DemoTeacherAdapter
from infi.ui import state


def allowed_reference(reference: str) -> str:
    """On a hosted deployment models come from the hub only: the server's folders are not a
    visitor's to read. Raises ValueError naming the reference otherwise."""
    if state.hosted() and reference != DEMO_ENCODER and not is_hub_id(reference):
        raise ValueError(f"{reference!r}: local folders are disabled on this hosted deployment; give a "
                         "hub id such as 'openai/clip-vit-base-patch32'")
    return reference


def encoder(name: str) -> ClipEncoder:
    """The shared encoder for ``name``, after the hosted-deployment check."""
    return _encoder(allowed_reference(name))


@st.cache_resource(show_spinner="Loading the encoder…", max_entries=3)
def _encoder(name: str) -> ClipEncoder:
    enc = ClipEncoder.load(name)
    session_mod._ENCODERS[name] = enc  # the Session reuses the same loaded model
    return enc


@st.cache_resource(show_spinner="Loading the demo teacher…")
def demo_teacher() -> DemoTeacherAdapter:
    return DemoTeacherAdapter()
