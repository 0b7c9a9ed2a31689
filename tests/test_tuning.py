"""Tuning actions as weight bounds, refits under them, and the provenance log."""

import numpy as np
import pytest

from infi.student import ConceptStudent
from infi.tuning import (
    ALL_CLASSES,
    TuningAction,
    apply_actions,
    compensation,
    describe_actions,
    empty_bounds,
    expand_groups,
)
from tests.helpers import soft_problem


def refit_setup():
    X, P = soft_problem()
    s = ConceptStudent(n_members=4, alpha=1e-3, random_state=0).fit(X, P)
    concepts = [f"c{i}" for i in range(12)]
    return X, P, s, concepts, ["a", "b", "c"]


def test_remove_zeroes_the_concept_and_leaves_other_classes_untouched():
    X, P, s, concepts, classes = refit_setup()
    before = s.coef_.copy()
    lo, hi = empty_bounds(s.coef_.shape)
    lo, hi, touched = apply_actions([TuningAction("c0", "remove", "a")], s.coef_, lo, hi,
                                    concepts, classes)
    assert touched == [0]
    s.refit(X, P, lo, hi, touched)
    assert np.all(s.coef_[:, 0, 0] == 0)
    assert np.array_equal(s.coef_[:, :, 1:], before[:, :, 1:])
    # The class lost its best concept, so it agrees less with the teacher on class a.
    assert (s.predict(X) == P.argmax(1)).mean() < 0.99


def test_downtune_and_uptune_bound_magnitudes_with_sign_kept():
    X, P, s, concepts, classes = refit_setup()
    w0 = s.coef_[:, 1, 1].copy()
    lo, hi = empty_bounds(s.coef_.shape)
    lo, hi, touched = apply_actions([TuningAction("c1", "downtune", "b", scale=0.3)], s.coef_, lo,
                                    hi, concepts, classes)
    s.refit(X, P, lo, hi, touched)
    assert np.all(np.abs(s.coef_[:, 1, 1]) <= 0.3 * np.abs(w0) + 1e-6)
    assert np.all(np.sign(s.coef_[:, 1, 1]) * np.sign(w0) >= 0)
    w1 = s.coef_[:, 2, 2].copy()
    lo, hi, touched = apply_actions([TuningAction("c2", "uptune", "c", scale=1.5)], s.coef_, lo, hi,
                                    concepts, classes)
    s.refit(X, P, lo, hi, touched)
    assert np.all(np.abs(s.coef_[:, 2, 2]) >= 1.5 * np.abs(w1) - 1e-5)
    # Earlier bounds still hold after a later edit.
    assert np.all(np.abs(s.coef_[:, 1, 1]) <= 0.3 * np.abs(w0) + 1e-6)


def test_lock_keeps_weights_and_all_classes_touches_every_class():
    X, P, s, concepts, classes = refit_setup()
    w0 = s.coef_[:, 0, :].copy()
    lo, hi = empty_bounds(s.coef_.shape)
    lo, hi, touched = apply_actions([TuningAction("c0", "lock", ALL_CLASSES),
                                     TuningAction("c5", "remove", ALL_CLASSES)],
                                    s.coef_, lo, hi, concepts, classes)
    assert touched == [0, 1, 2]
    s.refit(X, P, lo, hi, touched)
    assert np.allclose(s.coef_[:, 0, :], w0)
    assert np.all(s.coef_[:, 5, :] == 0)


def test_uptune_of_a_zero_weight_needs_a_magnitude():
    X, P, s, concepts, classes = refit_setup()
    s.coef_[:, 7, 0] = 0.0
    lo, hi = empty_bounds(s.coef_.shape)
    with pytest.raises(ValueError, match="magnitude"):
        apply_actions([TuningAction("c7", "uptune", "a", scale=2.0)], s.coef_, lo, hi, concepts, classes)
    lo, hi, touched = apply_actions([TuningAction("c7", "uptune", "a", scale=2.0, magnitude=-0.5)],
                                    s.coef_, lo, hi, concepts, classes)
    s.refit(X, P, lo, hi, touched)
    assert np.all(s.coef_[:, 7, 0] <= -0.5 + 1e-6)


def test_uptune_where_some_members_dropped_the_concept_follows_the_ensemble():
    X, P, s, concepts, classes = refit_setup()
    s.coef_[:, 7, 0] = [0.0, 0.4, 0.6, 0.2]  # L1 zeroed it in one bootstrap member only
    lo, hi = empty_bounds(s.coef_.shape)
    lo, hi, touched = apply_actions([TuningAction("c7", "uptune", "a", scale=2.0)], s.coef_, lo, hi,
                                    concepts, classes)
    assert np.allclose(lo[:, 7, 0], [2 * 0.3, 0.8, 1.2, 0.4])  # the zero member: 2 x the member mean
    s.refit(X, P, lo, hi, touched)
    assert np.all(s.coef_[:, 7, 0] >= lo[:, 7, 0] - 1e-6)


def test_uptune_on_all_classes_names_the_class_where_the_weight_is_zero():
    X, P, s, concepts, classes = refit_setup()
    s.coef_[:, 7, 1] = 0.0
    lo, hi = empty_bounds(s.coef_.shape)
    with pytest.raises(ValueError, match="weight ~0 on class 'b'"):
        apply_actions([TuningAction("c7", "uptune", scale=2.0)], s.coef_, lo, hi, concepts, classes)


@pytest.mark.parametrize("action, message", [
    (TuningAction("nope", "remove"), "concept"),
    (TuningAction("c0", "remove", "zzz"), "class_name"),
    (TuningAction("c0", "downtune", scale=1.5), "scale"),
    (TuningAction("c0", "uptune", scale=0.5), "scale"),
    (TuningAction("c0", "explode"), "kind"),
])
def test_bad_actions_are_named(action, message):
    X, P, s, concepts, classes = refit_setup()
    lo, hi = empty_bounds(s.coef_.shape)
    with pytest.raises(ValueError, match=message):
        apply_actions([action], s.coef_, lo, hi, concepts, classes)


def test_two_actions_on_the_same_concept_and_class_in_one_edit_are_refused():
    X, P, s, concepts, classes = refit_setup()
    lo, hi = empty_bounds(s.coef_.shape)
    with pytest.raises(ValueError, match=r"'c3' on all classes has 2 actions in one edit \(remove, lock\)"):
        apply_actions([TuningAction("c3", "remove"), TuningAction("c3", "lock")], s.coef_, lo, hi,
                      concepts, classes)
    # A class-specific action refining an all-classes one is allowed: the later one wins there.
    lo, hi, touched = apply_actions([TuningAction("c3", "remove"), TuningAction("c3", "lock", "a")],
                                    s.coef_, lo, hi, concepts, classes)
    assert np.all(lo[:, 3, 0] == s.coef_[:, 3, 0]) and np.all(hi[:, 3, 1:] == 0)


def test_a_group_action_equals_the_same_actions_one_by_one():
    X, P, s, concepts, classes = refit_setup()
    groups = {"first": ["c0", "c1", "c2"], "rest": concepts[3:]}
    lo, hi = empty_bounds(s.coef_.shape)
    group = expand_groups([TuningAction.for_group("first", "downtune", "b", scale=0.5)], groups)
    assert [a.concept for a in group] == ["c0", "c1", "c2"] and {a.group for a in group} == {"first"}
    one_by_one = [TuningAction(c, "downtune", "b", scale=0.5) for c in ("c0", "c1", "c2")]
    by_group = apply_actions(group, s.coef_, lo, hi, concepts, classes)
    by_concept = apply_actions(one_by_one, s.coef_, lo, hi, concepts, classes)
    for a, b in zip(by_group, by_concept):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="'colours' is not a concept group"):
        expand_groups([TuningAction.for_group("colours", "remove")], groups)


def test_hold_others_keeps_every_untouched_weight_in_its_band():
    X, P, s, concepts, classes = refit_setup()
    before = s.coef_.copy()
    lo, hi = empty_bounds(s.coef_.shape)
    lo, hi, touched = apply_actions([TuningAction("c1", "remove", "b")], s.coef_, lo, hi, concepts,
                                    classes, hold_others=0.2)
    s.refit(X, P, lo, hi, touched)
    others = [j for j in range(12) if j != 1]
    w0, w = before[:, others, 1], s.coef_[:, others, 1]
    assert np.all(np.abs(w - w0) <= 0.2 * np.abs(w0) + 1e-6)
    assert np.all(s.coef_[:, 1, 1] == 0)
    assert np.array_equal(s.coef_[:, :, [0, 2]], before[:, :, [0, 2]])  # untouched classes
    with pytest.raises(ValueError, match="hold_others"):
        apply_actions([TuningAction("c1", "remove", "b")], s.coef_, lo, hi, concepts, classes, hold_others=-1)


def test_compensation_names_the_concepts_that_took_over():
    before = np.zeros((2, 3, 2), np.float32)
    before[:, 0, 0] = 1.0  # concept a drives class x
    after = before.copy()
    after[:, 0, 0] = 0.0
    after[:, 1, 0] = -0.9  # b took over, with the sign flipped
    after[:, 2, 1] = 0.5  # class y was not touched: not reported
    rows = compensation(before, after, [{"concept": "a", "kind": "remove", "class_name": "x"}],
                        ["a", "b", "c"], ["x", "y"], ["x"])
    assert rows == [{"class": "x", "concept": "b", "before": 0.0, "after": pytest.approx(-0.9),
                     "growth": pytest.approx(0.9)}]


def test_provenance_names_a_group_once_with_its_concepts():
    actions = [{"concept": c, "kind": "remove", "class_name": "triangle", "scale": None, "group": "background"}
               for c in ("grass", "sky")] + [{"concept": "red", "kind": "lock", "class_name": "*"}]
    assert describe_actions(actions) == "remove background on triangle (grass, sky); lock red on all classes"
    action = TuningAction.from_dict({"group": "background", "kind": "remove", "class_name": "triangle"})
    assert action.is_group and action.group == "background"
    with pytest.raises(ValueError, match="concept.*or a 'group'"):
        TuningAction.from_dict({"kind": "remove"})
