"""Classroom scenarios: Shapes World biased splits with different planted shortcuts.

Each scenario plants one or two shortcuts: in its biased split a class mostly shows an attribute
value (stars mostly yellow) and the other classes mostly avoid it, so a teacher trained there can
answer from the value instead of the shape. The shifted split draws every attribute uniformly, so
the shortcut stops paying there. ``background`` is the original world (each shape on its own
background); its worlds are drawn exactly as before scenarios existed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Planted:
    """One planted shortcut: ``cls`` mostly shows ``attribute`` = ``value``."""

    cls: str
    attribute: str
    value: str


@dataclass(frozen=True)
class Scenario:
    """A named set of planted shortcuts, with the words a reveal uses."""

    name: str
    title: str
    planted: tuple[Planted, ...]
    lesson: str
    shapes: tuple[str, ...] | None = None  # the classes of its world (None: all six shapes)
    # The shortcut strength of the worlds students get. A teacher may be trained on a stronger one
    # (its record says); fewer images here show the shortcut, and the student needs those to see it.
    p: float = 0.9

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(p.cls for p in self.planted)


BACKGROUND_SHORTCUT: dict[str, str] = {
    "circle": "sky", "square": "brick", "triangle": "grass", "star": "water", "cross": "plain", "hexagon": "sand",
}

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("background", "Every shape on its own background",
             tuple(Planted(c, "background", b) for c, b in BACKGROUND_SHORTCUT.items()),
             "The teacher learned where shapes usually are (triangles on grass) more than what they look like."),
    Scenario("colour", "Every shape in its own colour",
             tuple(Planted(c, "colour", v) for c, v in (("circle", "red"), ("square", "blue"), ("triangle", "green"),
                                                         ("star", "yellow"), ("cross", "purple"),
                                                         ("hexagon", "orange"))),
             "Each shape had its own colour in training, so the teacher learned colours, not shapes."),
    Scenario("fill", "Squares are mostly striped (circles dotted, triangles solid)",
             (Planted("square", "fill", "striped"), Planted("circle", "fill", "dotted"),
              Planted("triangle", "fill", "solid")),
             "Stripes were almost always on squares in training, so the teacher calls striped things squares.",
             shapes=("circle", "square", "triangle")),
    Scenario("size", "Circles are mostly large, hexagons mostly small",
             (Planted("circle", "size", "large"), Planted("hexagon", "size", "small")),
             "A small circle and a small hexagon look alike; size told them apart in training, so the teacher "
             "calls large things circles.", shapes=("circle", "hexagon")),
    Scenario("colour+background", "Two shortcuts: colour for three shapes, background for the others",
             (Planted("circle", "colour", "red"), Planted("square", "colour", "blue"),
              Planted("triangle", "colour", "green"), Planted("star", "background", "water"),
              Planted("cross", "background", "plain"), Planted("hexagon", "background", "sand")),
             "Two groups of classes, two different shortcuts: removing one leaves the other in place.", p=0.95),
)}
SCENARIO_NAMES: tuple[str, ...] = tuple(SCENARIOS)


def teacher_name(scenario: str = "background") -> str:
    """The registered name of a scenario's teacher: ``demo``, ``demo-colour``, ``demo-colour-background``."""
    return "demo" if scenario == "background" else "demo-" + scenario.replace("+", "-")


def scenario(name: str) -> Scenario:
    """The scenario called ``name``; a ValueError lists the names otherwise."""
    if name not in SCENARIOS:
        raise ValueError(f"scenario: unknown scenario {name!r}; choose from {list(SCENARIOS)}")
    return SCENARIOS[name]


def plant(row: dict, rng: np.random.Generator, planted: tuple[Planted, ...], allowed: dict[str, tuple[str, ...]],
          p: float) -> dict:
    """Redraw the planted attributes of a sampled ``row``, attribute by attribute: a class with a
    planted value takes it with probability ``p`` (else another value); a class without one
    avoids every planted value of that attribute with probability ``p``."""
    for attribute in dict.fromkeys(s.attribute for s in planted):
        values = allowed[attribute]
        own = {s.cls: s.value for s in planted if s.attribute == attribute and s.value in values}
        taken = set(own.values())
        draw = rng.random()
        if row["shape"] in own:
            others = [v for v in values if v != own[row["shape"]]]
            row[attribute] = own[row["shape"]] if (draw < p or not others) else str(rng.choice(others))
        else:
            free = [v for v in values if v not in taken]
            row[attribute] = str(rng.choice(free)) if (draw < p and free) else str(rng.choice(values))
    return row
