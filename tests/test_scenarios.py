"""Classroom scenarios: Shapes World biased splits with other planted shortcuts (first part of the
classroom issue: the worlds; their teachers and the exercise mode come next)."""

import numpy as np
import pytest

from infi.demo.scenarios import SCENARIOS, scenario
from infi.demo.world import from_world, generate_world, regenerate


@pytest.mark.parametrize("name", [n for n in SCENARIOS if n != "background"])
def test_each_scenario_plants_its_shortcuts_in_the_biased_split_only(name):
    biased = generate_world(1500, "biased", seed=11, scenario=name).attributes
    shifted = generate_world(1500, "shifted", seed=11, scenario=name).attributes
    for planted in scenario(name).planted:
        own = biased[biased["shape"] == planted.cls][planted.attribute] == planted.value
        back = biased[biased[planted.attribute] == planted.value]["shape"] == planted.cls
        assert own.mean() > 0.8 and back.mean() > 0.6, planted  # the value predicts the class
        assert (shifted[shifted[planted.attribute] == planted.value]["shape"] == planted.cls).mean() < 0.35
    counts = biased["background"].value_counts(normalize=True)
    assert counts.max() < 0.25  # no background shortcut beside the planted one


def test_scenario_worlds_are_deterministic_and_regenerate_from_their_description():
    a = generate_world(40, "biased", seed=3, scenario="colour+fill")
    b = generate_world(40, "biased", seed=3, scenario="colour+fill")
    assert np.array_equal(a.images, b.images) and a.attributes.equals(b.attributes)
    images = from_world(a)
    assert images.source["scenario"] == "colour+fill"
    assert regenerate(images.source).content_hash == images.content_hash
    original = from_world(generate_world(40, "biased", seed=3))
    assert "scenario" not in original.source  # the original world's description is as it was
    assert original.content_hash != images.content_hash


def test_an_unknown_scenario_is_named_with_the_choices():
    with pytest.raises(ValueError, match="choose from"):
        generate_world(10, scenario="stripes")
