"""Classroom exercises: a scenario behind a number, a check of a student's diagnosis, and the
figures a reveal shows (the teacher's gap, the planted concepts' ranks, the repair's gain).

Students see "Exercise 2", never the scenario's name; ``docs/classroom.md`` maps numbers to
scenarios for the instructor. Everything here is pure or works on a ``Session``: no Streamlit.
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass

from infi import metrics
from infi.config import TuneConfig
from infi.data import ImageSet
from infi.demo.scenarios import SCENARIOS, Planted, Scenario
from infi.demo.world import WORLD_SOURCE, from_world, generate_world
from infi.errors import InputError
from infi.session import Session
from infi.tuning import TuningAction

# Exercise k is EXERCISES[k - 1]. The order is the lesson's (easiest first), not alphabetical,
# so a number says nothing about the shortcut behind it.
EXERCISES: tuple[str, ...] = ("colour", "fill", "size", "colour+background", "background")
WORLD_SEED = 7  # exercise worlds use test seeds (< 1000); the teachers were trained on seeds >= 2000
WORLD_IMAGES = 1200
SHIFTED_IMAGES = 600
REPAIR_HOLD = TuneConfig().hold_others  # the app's and the CLI's default band (0.25)


def exercise_scenario(number: int) -> Scenario:
    """The scenario behind exercise ``number`` (1-based); a ValueError names the range."""
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= len(EXERCISES):
        raise ValueError(f"exercise: choose a number from 1 to {len(EXERCISES)}, got {number!r}")
    return SCENARIOS[EXERCISES[number - 1]]


RANDOM = "random"


@dataclass(frozen=True)
class Exercise:
    """An exercise in progress: its label (``"3"`` or ``random``) and the scenario behind it."""

    label: str
    scenario: Scenario

    @property
    def title(self) -> str:
        """What students see: the number, never the scenario's name."""
        return "A random exercise" if self.label == RANDOM else f"Exercise {self.label}"


def pick(choice: int | str) -> Exercise:
    """Exercise ``choice`` (a number from 1), or a random one (``"random"``, drawn here)."""
    if choice == RANDOM:
        return Exercise(RANDOM, SCENARIOS[secrets.choice(EXERCISES)])
    return Exercise(str(int(choice)), exercise_scenario(int(choice)))


def exercise_data(exercise: Exercise, n: int = WORLD_IMAGES,
                  n_shifted: int = SHIFTED_IMAGES) -> tuple[ImageSet, dict[str, ImageSet]]:
    """The exercise's biased world (with the scenario's shortcut strength) and a shifted split to
    evaluate on; the dataset's source carries the exercise label, so a saved session, an
    autosave or a refresh keeps the exercise (``exercise_of``)."""
    name = exercise.scenario.name
    data = from_world(generate_world(n, "biased", p=exercise.scenario.p, seed=WORLD_SEED, scenario=name))
    data.source["exercise"] = exercise.label
    data.source["exercise_run"] = secrets.token_hex(4)  # each start is a new attempt (its own answers)
    shifted = from_world(generate_world(n_shifted, "shifted", seed=WORLD_SEED + 1, scenario=name))
    return data, {"shifted": shifted}


def exercise_of(images: ImageSet | None) -> Exercise | None:
    """The exercise a dataset belongs to (None for any other dataset)."""
    source = images.source if images is not None else {}
    if source.get("kind") != WORLD_SOURCE or "exercise" not in source:
        return None
    name = str(source.get("scenario", "background"))
    return Exercise(str(source["exercise"]), SCENARIOS[name]) if name in SCENARIOS else None


@dataclass(frozen=True)
class Diagnosis:
    """A verdict on one answer: ``correct`` and a hint that points where to look, never the answer."""

    correct: bool
    verdict: str  # right | right-group | class-only | concept-only | shape | wrong
    message: str


def diagnose(scenario: Scenario, class_name: str, answer: str, groups: dict[str, list[str]]) -> Diagnosis:
    """Check "``class_name`` leans on ``answer``", where ``answer`` is a concept or a concept group
    (a corpus category such as ``colour``); ``groups`` maps each group to its concepts."""
    group_of = {c: g for g, members in groups.items() for c in members}
    if answer not in groups and answer not in group_of:
        raise InputError(f"diagnosis: {answer!r} is neither a concept nor a concept group of this student")
    is_group = answer in groups and answer not in group_of
    group = answer if is_group else group_of[answer]
    own = [p for p in scenario.planted if p.cls == class_name]
    planted_values = {p.value for p in scenario.planted}
    planted_groups = {p.attribute for p in scenario.planted}
    if group == "shape":
        return Diagnosis(False, "shape", f"{answer} describes the shape itself: a teacher that leans on it is doing "
                         "its job. Look for a concept high in the influence list that has nothing to do with shape.")
    if own:
        hit = [p for p in own if (is_group and p.attribute == group) or answer in evidence(p, groups)]
        if hit:
            p = hit[0]
            how = p.value if is_group or answer == p.value else f"{p.value} ({answer}, negatively)"
            return Diagnosis(True, "right" if not is_group else "right-group",
                             f"Right: the teacher's {class_name} leans on {how}: the {p.attribute} concepts. "
                             "Press Reveal to see how the shortcut was planted and what removing it repairs.")
        if any(p.attribute == group for p in own):
            return Diagnosis(False, "right-group", f"Right class, and the right kind of concept, but not {answer}: "
                             f"look again at which {group} concept tops the influence of {class_name}.")
        return Diagnosis(False, "class-only", f"Right class, wrong concept: look at the influence of {class_name} "
                         f"(Fine-tune, or the influence chart on Distill) for a concept near the top that does not "
                         "describe a shape.")
    if answer in planted_values or (is_group and group in planted_groups):
        return Diagnosis(False, "concept-only", f"Right concept, wrong class: {class_name} does not lean on "
                         f"{answer}. Which class does {answer} push up the most?")
    return Diagnosis(False, "wrong", f"Not this one: {class_name} does not lean on {answer}. Compare the "
                     "accuracy per class on the shifted split (Fine-tune): a class that drops there is a good start.")


def evidence(planted: Planted, groups: dict[str, list[str]]) -> tuple[str, ...]:
    """The concepts that show a planted shortcut: its value, and for a two-valued attribute
    (small, large) the other value too, since "small" is "not large" and a sparse student keeps
    only one of the pair (hexagon leans on large, negatively)."""
    members = groups.get(planted.attribute, [])
    if len(members) == 2 and planted.value in members:
        return (planted.value, *(m for m in members if m != planted.value))
    return (planted.value,)


def planted_ranks(session: Session, scenario: Scenario) -> dict[str, int]:
    """For each planted shortcut, the 1-based rank of its evidence (``evidence``) in its class's
    influence list."""
    groups = session.concept_groups()
    ranks = {}
    for p in scenario.planted:
        table = session.influence_table(p.cls)
        hits = table.index[table["concept"].isin(evidence(p, groups))]
        ranks[f"{p.cls}: {p.value}"] = int(hits.min()) + 1 if len(hits) else len(table) + 1
    return ranks


def repair_actions(scenario: Scenario) -> list[TuningAction]:
    """The repair: remove each planted concept group from every class."""
    groups = dict.fromkeys(p.attribute for p in scenario.planted)
    return [TuningAction.for_group(g, "remove") for g in groups]


def repair_preview(session: Session, scenario: Scenario, split: str = "shifted",
                   hold_others: float | None = REPAIR_HOLD) -> dict:
    """What the repair would do to the student, measured on a copy (the session is unchanged):
    accuracy on ``split`` now and after the repair, and the groups it removes. The other weights
    are held as the app holds them by default: refit freely, correlated concepts (fill, for size)
    take the removed group's role and the repair does little."""
    if session.student is None or split not in session.eval_sets:
        raise InputError(f"repair: needs a distilled student and a {split!r} evaluation set")
    trial = session.snapshot()
    trial.student = copy.deepcopy(session.student)  # nothing the trial refits may reach the person's student
    before = trial.evaluate().get(f"{split}_accuracy")
    actions = repair_actions(scenario)
    try:
        after = trial.tune(actions, label="repair preview",
                           hold_others=hold_others).metrics_after.get(f"{split}_accuracy")
    except InputError:  # the person already removed these groups: the repair is in place
        after = before
    return {"before": before, "after": after, "groups": [a.group for a in actions]}


def teacher_gap(session: Session, split: str = "shifted") -> tuple[float | None, float | None]:
    """The teacher's accuracy on the session's (biased) dataset and on ``split``."""
    biased = metrics.accuracy(session.P, session.labels) if session.P is not None else None
    e = session.eval_sets.get(split)
    shifted = None
    if e is not None and e.P is not None:
        shifted = metrics.accuracy(e.P, session.labels_for(e.images, session.class_names))
    return biased, shifted
