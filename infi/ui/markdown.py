"""User text (class, concept, file and teacher names) shown through Streamlit markdown is
escaped here, so a folder named ``![x](http://…)`` shows as text, not as a remote image."""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|<>~$:])")


def escape(text: object) -> str:
    """``text`` with every markdown-active character backslash-escaped."""
    return _SPECIAL.sub(r"\\\1", str(text))


# Step marks from Streamlit's bundled Material Symbols font: they render offline, without an emoji font.
DONE = ":green[:material/check_circle:]"
TODO = ":gray[:material/radio_button_unchecked:]"
