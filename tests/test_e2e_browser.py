"""End to end in a real browser: `streamlit run` on a free port, Debian's chromium driven by
Playwright through the demo story, a screenshot of every page. Set INFI_UPDATE_SCREENSHOTS=1 to
copy the screenshots into docs/screenshots/ for the README."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.browser_story import ROOT, chromium_path, run_demo_story, streamlit_server

if chromium_path() is None and not os.environ.get("CI"):
    pytest.skip("Debian chromium is not installed (.ci/run installs it)", allow_module_level=True)


def test_demo_story_in_chromium(tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with streamlit_server(tmp_path / "streamlit.log") as (url, _):
        run_demo_story(url, shots)
    for name in ("data", "concepts", "distill", "finetune", "compact"):
        assert (shots / f"{name}.png").stat().st_size > 10_000
    if os.environ.get("INFI_UPDATE_SCREENSHOTS"):
        target = ROOT / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        for f in shots.iterdir():
            shutil.copy(f, target / f.name)


def test_a_store_made_with_ray_opens_in_chromium(tmp_path, ray_store):
    from tests.browser_story import run_store_story

    shots = tmp_path / "screenshots"
    shots.mkdir()
    with streamlit_server(tmp_path / "streamlit.log") as (url, _):
        run_store_story(url, ray_store.path, shots)
    assert (shots / "store.png").stat().st_size > 10_000
    if os.environ.get("INFI_UPDATE_SCREENSHOTS"):
        shutil.copy(shots / "store.png", ROOT / "docs" / "screenshots" / "store.png")


def test_an_exercise_link_hides_its_scenario_in_chromium_until_reveal(tmp_path):
    from infi.demo.exercise import EXERCISES
    from infi.demo.scenarios import scenario
    from tests.browser_story import run_exercise_story

    shots = tmp_path / "screenshots"
    shots.mkdir()
    fill = scenario("fill")
    with streamlit_server(tmp_path / "streamlit.log") as (url, _):
        run_exercise_story(url, EXERCISES.index("fill") + 1, ("square", "striped"),
                           [fill.title, fill.lesson, "scenario", "background shortcut"], shots)
    assert (shots / "exercise-reveal.png").stat().st_size > 10_000
    if os.environ.get("INFI_UPDATE_SCREENSHOTS"):
        for name in ("exercise.png", "exercise-reveal.png"):
            shutil.copy(shots / name, ROOT / "docs" / "screenshots" / name)


def test_a_page_url_on_a_fresh_server_opens_inside_the_app(tmp_path):
    """Streamlit runs a page alone, with the pages/ folder's file names as navigation, when its URL
    is a fresh server's first request; every page then runs app.py's navigation instead."""
    from tests.browser_story import open_page_first

    with streamlit_server(tmp_path / "streamlit.log") as (url, _):
        text = open_page_first(url, "distill", "Distill")
    assert "Pipeline" in text and "Fine-tune" in text and "Classroom exercise" in text  # app.py's sidebar
    assert "finetune" not in text  # not the folder's file names
