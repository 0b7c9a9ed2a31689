"""Shared read-only models through ``st.cache_resource``: encoders and registered teachers.

Only models live here; anything derived from a user's data stays in that user's session state.
"""

from __future__ import annotations

import streamlit as st

from infi import registry
from infi.encoders import ClipEncoder, shared_encoder
from infi.errors import InputError
from infi.hub import is_hub_id
from infi.ui import state


def allowed_reference(reference: str) -> str:
    """On a hosted deployment models come from the hub or the bundled plug-ins only: the
    server's folders are not a visitor's to read. Raises InputError naming the reference."""
    if state.hosted() and reference not in registry.ENCODERS and not is_hub_id(reference):
        raise InputError(f"{reference!r}: local folders are disabled on this hosted deployment; give a "
                         "hub id such as 'openai/clip-vit-base-patch32'")
    return reference


def encoder(name: str) -> ClipEncoder:
    """The shared encoder for ``name``, after the hosted-deployment check."""
    return _encoder(allowed_reference(name))


@st.cache_resource(show_spinner="Loading the encoder…", max_entries=3)
def _encoder(name: str) -> ClipEncoder:
    return shared_encoder(name)  # the same object the Session uses


@st.cache_resource(show_spinner="Loading the teacher…")
def registered_teacher(name: str):
    """A teacher a plug-in registered (the demo teacher), loaded once per process."""
    return registry.TEACHERS.get(name)()
