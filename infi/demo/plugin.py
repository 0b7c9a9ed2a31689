"""Shapes World as an Infi plug-in: its encoder, teacher, concept corpus and dataset regenerator
are registered by name, so core modules find them without importing ``infi.demo``."""

from __future__ import annotations

from functools import partial

from infi import registry
from infi.corpus import Corpus
from infi.demo.scenarios import SCENARIO_NAMES, teacher_name
from infi.demo.world import ATTRIBUTE_VALUES, WORLD_SOURCE, regenerate

DEMO = "demo"
DEMO_TEMPLATES: tuple[str, ...] = ("{}",)


def demo_corpus() -> Corpus:
    """Shapes World's own words: every attribute value, categorised by attribute."""
    concepts, cats = [], []
    for attribute, values in ATTRIBUTE_VALUES.items():
        for v in values:
            concepts.append(v)
            cats.append(attribute)
    return Corpus(tuple(concepts), tuple(cats), DEMO_TEMPLATES, "shapes world")


def _encoder():
    from infi.demo.encoder import load_demo_encoder

    return load_demo_encoder()


def _teacher(scenario: str = "background"):
    from infi.demo.teacher import DemoTeacherAdapter

    if scenario == "background":
        return DemoTeacherAdapter()
    return DemoTeacherAdapter(name=f"demo teacher ({scenario})", scenario=scenario)


def register() -> None:
    """Register the demo's pieces under ``demo`` (idempotent); the ``infi.plugins`` entry point."""
    registry.ENCODERS.register(DEMO, _encoder)
    registry.TEACHERS.register(DEMO, _teacher)
    for name in SCENARIO_NAMES[1:]:  # each classroom scenario's teacher: demo-colour, demo-fill, …
        registry.TEACHERS.register(teacher_name(name), partial(_teacher, name))
    registry.CORPORA.register(DEMO, demo_corpus)
    registry.DATASETS.register(WORLD_SOURCE, regenerate)
