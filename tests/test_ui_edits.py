"""Pending edits keyed by concept: a re-sorted table never moves a choice to another concept."""

import pandas as pd
import pytest

from infi.errors import TuningError
from infi.tuning import ALL_CLASSES
from infi.ui import edits
from infi.ui.edits import NO_ACTION


def table(order):
    return edits.prefill(pd.DataFrame({"concept": order, "weight": range(len(order))}), {}, "triangle", "concept")


def test_a_choice_stays_with_its_concept_when_the_rows_re_sort():
    shown = table(["grass", "sky", "red"])
    edited = shown.copy()
    edited.loc[1, ["action", "scale"]] = ["downtune", "0.1"]  # row 1 is sky
    pending = edits.merge({}, "triangle", "concept", edited)
    assert pending == {("triangle", "sky"): {"kind": "downtune", "scale": "0.1", "magnitude": ""}}
    # After a refit the rows come back in another order: the choice is still sky's.
    again = edits.prefill(pd.DataFrame({"concept": ["red", "sky", "grass"], "weight": [0, 1, 2]}),
                          pending, "triangle", "concept")
    assert list(again["action"]) == [NO_ACTION, "downtune", NO_ACTION]
    assert again.loc[1, "scale"] == "0.1"


def test_clearing_a_cell_removes_the_pending_edit_and_others_stay():
    shown = edits.prefill(pd.DataFrame({"concept": ["grass", "sky"]}), {
        ("triangle", "grass"): {"kind": "remove", "scale": "", "magnitude": ""},
        ("circle", "sky"): {"kind": "lock", "scale": "", "magnitude": ""}}, "triangle", "concept")
    edited = shown.copy()
    edited.loc[0, "action"] = NO_ACTION
    pending = edits.merge({("triangle", "grass"): {"kind": "remove", "scale": "", "magnitude": ""},
                           ("circle", "sky"): {"kind": "lock", "scale": "", "magnitude": ""}},
                          "triangle", "concept", edited)
    assert pending == {("circle", "sky"): {"kind": "lock", "scale": "", "magnitude": ""}}


def test_the_table_is_the_truth_for_its_own_rows_only():
    """The browser drops an edit that equals the table's base value; the choice must stay."""
    pending = {("triangle", "grass"): {"kind": "remove", "scale": "", "magnitude": ""},
               ("circle", "grass"): {"kind": "lock", "scale": "", "magnitude": ""}}
    base = edits.prefill(pd.DataFrame({"concept": ["sky", "grass"]}), pending, "triangle", "concept")
    edited = base.copy()
    edited.loc[0, "action"] = "lock"
    assert edits.merge(pending, "triangle", "concept", edited) == {
        **pending, ("triangle", "sky"): {"kind": "lock", "scale": "", "magnitude": ""}}
    groups = edits.prefill(pd.DataFrame({"group": ["background"]}), {}, "triangle", "group", edits.GROUP_PREFIX)
    groups.loc[0, "action"] = "remove"
    assert ("triangle", "group:background") in edits.merge({}, "triangle", "group", groups, edits.GROUP_PREFIX)


def test_pending_edits_become_actions_with_default_scales_and_groups():
    pending = {("triangle", "grass"): {"kind": "downtune", "scale": "", "magnitude": ""},
               ("All classes", "group:background"): {"kind": "remove", "scale": "", "magnitude": ""},
               ("circle", "red"): {"kind": "uptune", "scale": "3", "magnitude": "-0.5"}}
    grass, background, red = edits.to_actions(pending)
    assert (grass.concept, grass.scale, grass.class_name) == ("grass", 0.2, "triangle")
    assert background.is_group and background.group == "background" and background.class_name == ALL_CLASSES
    assert (red.scale, red.magnitude) == (3.0, -0.5)
    assert edits.describe(pending) == ["downtune grass ×0.2 on triangle", "remove the group background on all classes",
                                       "uptune red ×3 (magnitude -0.5 where the weight is 0) on circle"]
    with pytest.raises(TuningError, match="scale of grass on triangle: 'a lot' is not a number"):
        edits.to_actions({("triangle", "grass"): {"kind": "downtune", "scale": "a lot", "magnitude": ""}})
