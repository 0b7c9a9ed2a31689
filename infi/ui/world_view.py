"""Shapes World browser: generator controls, a thumbnail grid and the attribute table."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from infi.demo.world import ATTRIBUTE_VALUES, SPLITS, World, generate_world
from infi.ui import state

GRID_COLUMNS = 8


@st.cache_data(show_spinner="Generating Shapes World…", max_entries=8)
def cached_world(n: int, split: str, p: float, seed: int) -> World:
    """Worlds are pure functions of their parameters, so a shared cache is safe here."""
    return generate_world(n, split=split, p=p, seed=seed)


def world_controls() -> tuple[int, str, float, int]:
    """Sidebar controls for the generator; returns (n, split, p, seed)."""
    st.sidebar.header("Shapes World")
    split = st.sidebar.selectbox("Split", SPLITS, key=state.WORLD_SPLIT,
                                 help="biased: each shape usually sits on its own background; "
                                      "shifted: backgrounds are independent of the shape.")
    n = st.sidebar.number_input("Images", min_value=1, max_value=5000, value=96, step=16,
                                key=state.WORLD_SIZE)
    p = st.sidebar.slider("Shortcut probability p", 0.0, 1.0, 0.9, 0.05, key=state.WORLD_P,
                          disabled=split != "biased")
    seed = st.sidebar.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0,
                                   key=state.WORLD_SEED)
    return int(n), str(split), float(p), int(seed)


def filter_rows(attributes: pd.DataFrame, chosen: dict[str, list[str]]) -> pd.DataFrame:
    """Rows whose attributes are among the chosen values (an empty choice keeps everything)."""
    keep = pd.Series(True, index=attributes.index)
    for name, values in chosen.items():
        if values:
            keep &= attributes[name].isin(values)
    return attributes[keep]


def show_world(world: World, max_thumbnails: int = 64) -> None:
    """Thumbnail grid (captioned by attributes) and the full attribute table."""
    cols = st.columns(len(ATTRIBUTE_VALUES))
    chosen = {name: col.multiselect(name.capitalize(), values, key=f"{state.WORLD_FILTER}_{name}")
              for col, (name, values) in zip(cols, ATTRIBUTE_VALUES.items())}
    rows = filter_rows(world.attributes, chosen)
    if rows.empty:
        st.info("No image matches these filters: clear one of them to see images again.")
        return
    st.caption(f"{len(rows)} of {len(world)} images match; showing the first "
               f"{min(len(rows), max_thumbnails)}.")
    shown = rows.index[:max_thumbnails]
    for start in range(0, len(shown), GRID_COLUMNS):
        grid = st.columns(GRID_COLUMNS)
        for col, i in zip(grid, shown[start:start + GRID_COLUMNS]):
            r = world.attributes.loc[i]
            col.image(world.images[i], caption=f"{r['shape']} · {r['background']}", width="stretch")
    st.subheader("Attributes")
    st.dataframe(rows.drop(columns=["cx", "cy", "radius", "rotation"]), hide_index=True,
                 width="stretch")
