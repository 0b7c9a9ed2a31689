"""Shared read-only models through ``st.cache_resource``: encoders and registered teachers.

Only models live here; anything derived from a user's data stays in that user's session state.
"""

from __future__ import annotations

import streamlit as st

from infi import registry
from infi.encoders import ClipEncoder, is_loaded, shared_encoder
from infi.errors import InputError
from infi.hub import is_hub_id
from infi.ui import state


def allowed_reference(reference: str, registered=registry.ENCODERS) -> str:
    """On a hosted deployment models come from the hub or the bundled plug-ins only: the
    server's folders are not a visitor's to read. A registered name (``demo``) is allowed only
    where it names the bundled model (``registered``), never as a folder of that name. Raises
    InputError naming the reference."""
    reference = reference.strip()
    if state.hosted() and reference not in registered and not is_hub_id(reference):
        raise InputError(f"{reference!r}: local folders are disabled on this hosted deployment; give a "
                         "hub id such as 'openai/clip-vit-base-patch32'")
    return reference


def encoder(name: str) -> ClipEncoder:
    """The shared encoder for ``name``, after the hosted-deployment check. The library's bounded
    cache (``infi.encoders.shared_encoder``) is the process's only model cache; this adds the
    spinner while a model loads."""
    name = allowed_reference(name)
    if is_loaded(name):
        return shared_encoder(name)
    with st.spinner("Loading the encoder…"):
        return shared_encoder(name)


@st.cache_resource(show_spinner="Loading the teacher…")
def registered_teacher(name: str):
    """A teacher a plug-in registered (the demo teacher), loaded once per process."""
    return registry.TEACHERS.get(name)()
