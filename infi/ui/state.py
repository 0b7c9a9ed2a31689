"""Every ``st.session_state`` key the app uses, in one place, so pages never spell one twice."""

from __future__ import annotations

WORLD_SPLIT = "world_split"
WORLD_SIZE = "world_size"
WORLD_SEED = "world_seed"
WORLD_P = "world_p"
WORLD_FILTER = "world_filter"
