"""Shapes World: determinism, annotation correctness and parameter validation."""

import numpy as np
import pytest

from infi.demo.world import (
    ATTRIBUTE_VALUES,
    ATTRIBUTES,
    COLOURS,
    SHORTCUT,
    caption_for,
    generate_world,
)


@pytest.fixture(scope="module")
def world():
    return generate_world(240, split="shifted", seed=7)


def test_same_seed_gives_identical_world(world):
    again = generate_world(240, split="shifted", seed=7)
    assert np.array_equal(world.images, again.images)
    assert np.array_equal(world.masks, again.masks)
    assert world.attributes.equals(again.attributes)


def test_smaller_world_is_a_prefix_and_other_seed_differs(world):
    small = generate_world(30, split="shifted", seed=7)
    assert np.array_equal(small.images, world.images[:30])
    other = generate_world(30, split="shifted", seed=8)
    assert not np.array_equal(other.images, small.images)


def test_images_and_masks_have_the_documented_shape(world):
    assert world.images.shape == (240, 64, 64, 3) and world.images.dtype == np.uint8
    assert world.masks.shape == (240, 64, 64) and world.masks.dtype == bool
    assert len(set(world.ids)) == 240


def test_every_attribute_value_occurs(world):
    for name in ATTRIBUTES:
        assert set(world.attributes[name]) == set(ATTRIBUTE_VALUES[name]), name


def test_mask_area_matches_size_and_shape(world):
    area = world.masks.sum(axis=(1, 2))
    small = world.attributes["size"].to_numpy() == "small"
    assert area[small].max() < area[~small].min() * 1.2
    assert area[small].mean() * 2 < area[~small].mean()
    # Compactness: circles fill their radius-disc, stars fill far less of it.
    disc = np.pi * world.attributes["radius"].to_numpy() ** 2
    ratio = area / disc
    shapes = world.attributes["shape"].to_numpy()
    assert ratio[shapes == "circle"].mean() > 0.95
    assert ratio[shapes == "star"].mean() < 0.6
    assert ratio[shapes == "triangle"].mean() < ratio[shapes == "square"].mean()


def test_mask_is_centred_on_the_annotated_position(world):
    ys, xs = np.mgrid[0:64, 0:64]
    for i in range(0, 240, 7):
        m = world.masks[i]
        row = world.attributes.iloc[i]
        if row["shape"] == "triangle":  # a triangle's centroid sits below its circumcentre
            continue
        assert abs(xs[m].mean() - row["cx"]) < 1.5
        assert abs(ys[m].mean() - row["cy"]) < 1.5


def test_object_pixels_carry_the_annotated_colour(world):
    for i in range(0, 240, 5):
        row = world.attributes.iloc[i]
        pixels = world.images[i][world.masks[i]].astype(float)
        # Leave out the dark outline and the light pattern: what remains is the shape's colour.
        body = pixels[(pixels.max(axis=1) > 90) & (pixels.min(axis=1) < 235)]
        assert len(body) > 20, i
        median = {name: np.median(np.linalg.norm(body - np.array(c, float), axis=1))
                  for name, c in COLOURS.items()}
        assert min(median, key=median.get) == row["colour"], (i, row["colour"], median)
        assert median[row["colour"]] < 30


def test_fill_pattern_is_visible_inside_the_mask(world):
    light = {}
    for fill in ATTRIBUTE_VALUES["fill"]:
        idx = np.flatnonzero(world.attributes["fill"].to_numpy() == fill)
        light[fill] = np.mean([(world.images[i][world.masks[i]].min(axis=1) > 235).mean()
                               for i in idx])
    assert light["solid"] < 0.02
    assert light["striped"] > light["dotted"] > 0.05


def test_captions_name_every_attribute(world):
    for _, row in world.attributes.iterrows():
        for name in ATTRIBUTES:
            assert row[name] in row["caption"]


def test_caption_templates_vary(world):
    starts = {c.split(" ")[0] for c in world.captions}
    assert len(starts) >= 3
    rng = np.random.default_rng(0)
    row = dict(world.attributes.iloc[0])
    assert len({caption_for(row, rng) for _ in range(50)}) >= 4


def test_biased_split_follows_p():
    biased = generate_world(1500, split="biased", p=0.9, seed=3)
    own = biased.attributes["shape"].map(SHORTCUT) == biased.attributes["background"]
    assert 0.87 < own.mean() < 0.93
    shifted = generate_world(1500, split="shifted", seed=3)
    own = shifted.attributes["shape"].map(SHORTCUT) == shifted.attributes["background"]
    assert 0.12 < own.mean() < 0.22
    always = generate_world(100, split="biased", p=1.0, seed=3)
    assert (always.attributes["shape"].map(SHORTCUT) == always.attributes["background"]).all()


def test_labels_are_shape_indices(world):
    names = np.array(world.class_names)
    assert (names[world.labels] == world.attributes["shape"].to_numpy()).all()


def test_restricted_values_and_image_size():
    w = generate_world(40, shapes=["circle", "star"], backgrounds=["plain"], image_size=48)
    assert set(w.attributes["shape"]) <= {"circle", "star"}
    assert set(w.attributes["background"]) == {"plain"}
    assert w.images.shape[1:] == (48, 48, 3)
    assert w.class_names == ("circle", "star")


@pytest.mark.parametrize(
    "kwargs, parameter",
    [
        ({"n": 0}, "n"),
        ({"n": -3}, "n"),
        ({"n": 2.5}, "n"),
        ({"p": 1.5}, "p"),
        ({"p": -0.1}, "p"),
        ({"p": float("nan")}, "p"),
        ({"image_size": 31}, "image_size"),
        ({"split": "sideways"}, "split"),
        ({"shapes": ["circle", "oval"]}, "shapes"),
        ({"colours": ["teal"]}, "colours"),
        ({"fills": ["checked"]}, "fills"),
        ({"sizes": ["medium"]}, "sizes"),
        ({"backgrounds": ["snow"]}, "backgrounds"),
        ({"shapes": []}, "shapes"),
    ],
)
def test_bad_parameters_raise_a_named_value_error(kwargs, parameter):
    args = {"n": 10, **kwargs}
    with pytest.raises(ValueError, match=rf"^{parameter}:"):
        generate_world(**args)
