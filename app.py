"""Infi: concept-based knowledge distillation. For now, a browser of the offline Shapes World."""

import streamlit as st

from infi.ui.world_view import cached_world, show_world, world_controls

st.set_page_config(page_title="Infi · Shapes World", page_icon="🔷", layout="wide")
st.title("Shapes World")
st.write(
    "An offline image world whose concepts are known: every image has a shape, colour, fill, "
    "size and background. In the **biased** split each shape usually sits on its own background "
    "(a shortcut a teacher can learn); the **shifted** split breaks that link."
)
n, split, p, seed = world_controls()
show_world(cached_world(n, split, p, seed))
