"""AppTest of the Shapes World browser page."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from infi.demo.world import SHAPES, generate_world
from infi.ui import state

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def test_app_shows_the_world_and_filters_it():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "Shapes World"
    assert "96 of 96 images" in at.caption[0].value
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 96
    at.multiselect(key=f"{state.WORLD_FILTER}_shape").set_value(["triangle"]).run()
    shown = at.dataframe[0].value
    assert set(shown["shape"]) == {"triangle"}
    assert 0 < len(shown) < 96


def test_filters_matching_nothing_show_an_empty_state():
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.number_input(key=state.WORLD_SIZE).set_value(1).run()
    only = generate_world(1, seed=0).attributes["shape"][0]
    other = next(s for s in SHAPES if s != only)
    at.multiselect(key=f"{state.WORLD_FILTER}_shape").set_value([other]).run()
    assert not at.exception
    assert any("No image matches" in i.value for i in at.info)
    assert len(at.dataframe) == 0
