"""Classroom exercises in the library: numbers hide scenarios, the diagnosis check, the repair preview."""

import numpy as np
import pytest

from infi.demo.exercise import (
    EXERCISES,
    RANDOM,
    diagnose,
    exercise_data,
    exercise_of,
    exercise_scenario,
    pick,
    planted_ranks,
    repair_preview,
)
from infi.demo.plugin import demo_corpus
from infi.demo.scenarios import SCENARIOS, scenario
from infi.demo.teacher import DemoTeacherAdapter
from infi.demo.world import regenerate
from infi.session import Session

GROUPS = {"shape": ["circle", "square", "triangle", "star", "cross", "hexagon"],
          "colour": ["red", "green", "blue", "yellow", "purple", "orange"],
          "fill": ["solid", "striped", "dotted"], "size": ["small", "large"],
          "background": ["grass", "sky", "sand", "water", "brick", "plain"]}


def test_every_scenario_is_an_exercise_and_numbers_start_at_one():
    assert sorted(EXERCISES) == sorted(SCENARIOS)
    assert exercise_scenario(1).name == EXERCISES[0]
    for bad in (0, len(EXERCISES) + 1, "2", True):
        with pytest.raises(ValueError, match="choose a number"):
            exercise_scenario(bad)
    drawn = {pick(RANDOM).scenario.name for _ in range(60)}
    assert drawn <= set(SCENARIOS) and len(drawn) > 1  # random really draws, and only real scenarios


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_diagnosis_accepts_each_planted_shortcut_by_concept_and_by_group(name):
    s = scenario(name)
    for p in s.planted:
        assert diagnose(s, p.cls, p.value, GROUPS).correct
        group = diagnose(s, p.cls, p.attribute, GROUPS)
        assert group.correct and group.verdict == "right-group"


def test_the_diagnosis_rejects_other_answers_with_a_hint_that_does_not_give_the_answer():
    s = scenario("fill")  # squares striped, circles dotted, triangles solid
    wrong_concept = diagnose(s, "square", "red", GROUPS)
    assert not wrong_concept.correct and wrong_concept.verdict == "class-only"
    assert "striped" not in wrong_concept.message and "square" in wrong_concept.message
    near = diagnose(s, "square", "dotted", GROUPS)  # the right group, another value
    assert not near.correct and near.verdict == "right-group" and "striped" not in near.message
    wrong_class = diagnose(s, "hexagon", "striped", GROUPS)
    assert not wrong_class.correct and wrong_class.verdict == "concept-only"
    shape = diagnose(s, "square", "square", GROUPS)
    assert not shape.correct and shape.verdict == "shape"
    size = scenario("size")  # hexagons small: a student keeps one of small / large, so "large" shows it too
    assert diagnose(size, "hexagon", "large", GROUPS).correct and diagnose(size, "hexagon", "small", GROUPS).correct
    assert not diagnose(size, "hexagon", "striped", GROUPS).correct
    neither = diagnose(s, "hexagon", "grass", GROUPS)
    assert not neither.correct and neither.verdict == "wrong"
    with pytest.raises(Exception, match="neither a concept nor a concept group"):
        diagnose(s, "square", "sparkly", GROUPS)


def test_an_exercise_world_remembers_its_exercise_through_a_regeneration():
    exercise = pick(2)
    data, extra = exercise_data(exercise, n=60, n_shifted=40)
    assert exercise_of(data) == exercise and exercise_of(extra["shifted"]) is None
    again_started = exercise_data(exercise, n=60, n_shifted=40)[0]  # the same exercise started again
    assert again_started.content_hash == data.content_hash
    assert again_started.source["exercise_run"] != data.source["exercise_run"]  # a new attempt
    assert set(data.class_names) == set(exercise.scenario.shapes or data.class_names)
    again = regenerate(data.source)  # what a saved session or an autosave loads
    assert exercise_of(again) == exercise and again.content_hash == data.content_hash
    assert again.source["exercise_run"] == data.source["exercise_run"]


def test_the_repair_preview_measures_on_a_copy_and_ranks_the_planted_concepts():
    exercise = pick(EXERCISES.index("colour") + 1)
    data, extra = exercise_data(exercise, n=400, n_shifted=200)
    session = Session(seed=0)
    session.set_dataset(data, extra)
    session.run_teacher(DemoTeacherAdapter(scenario="colour"))
    session.set_encoder("demo")
    session.extract_concepts(demo_corpus(), "global")
    session.distill(n_members=4)
    coef, steps = session.student.coef_.copy(), len(session.provenance)
    preview = repair_preview(session, exercise.scenario)
    assert np.array_equal(session.student.coef_, coef) and len(session.provenance) == steps  # untouched
    assert preview["groups"] == ["colour"] and preview["after"] > preview["before"] + 0.1
    ranks = planted_ranks(session, exercise.scenario)
    assert len(ranks) == len(exercise.scenario.planted) and min(ranks.values()) <= 3
