"""Session chain, invalidation, tuning with provenance, configs and rebuilding from saved parts."""

from dataclasses import asdict

import numpy as np
import pytest

from infi.config import DistillConfig, PRGConfig
from infi.demo.plugin import demo_corpus
from infi.demo.teacher import DemoTeacherAdapter
from infi.demo.world import from_world, generate_world
from infi.errors import ConfigError, InputError
from infi.session import Session, SessionError
from infi.tuning import Provenance, TuningAction
from tests.helpers import demo_session


@pytest.fixture(scope="module")
def session():
    return demo_session()


def test_chain_produces_metrics_on_held_out_and_shifted(session):
    m = session.evaluate()
    assert 0 <= m["fidelity"] <= 1 and m["n"] == 48
    assert "shifted_accuracy" in m and "shifted_fidelity" in m
    assert len(m["per_class"]) == 6
    assert session.status()["student"].startswith("4 members")


def test_steps_need_their_inputs():
    s = Session()
    with pytest.raises(SessionError, match="dataset"):
        s.embed()
    with pytest.raises(SessionError, match="Distil"):
        s.tune([TuningAction("grass", "remove")])


def test_new_upstream_step_clears_dependants():
    s = demo_session(n=60, members=2)
    cleared = s.set_encoder("another-encoder")
    assert cleared == ["image embeddings", "concept scores", "student and provenance"]
    assert s.concepts is None and s.student is None and s.P is not None
    cleared = s.set_dataset(from_world(generate_world(30, seed=1)))
    assert "teacher outputs" in cleared and s.P is None


def test_tune_refits_logs_and_restores():
    s = demo_session(n=120, members=3)
    before = s.student.coef_.copy()
    step = s.tune([TuningAction("grass", "remove", "triangle")])
    j, c = s.concepts.names.index("grass"), s.class_names.index("triangle")
    assert np.all(s.student.coef_[:, j, c] == 0)
    assert step.touched_classes == ["triangle"] and len(s.provenance) == 2
    assert step.metrics_before["fidelity"] == s.provenance.steps[0].metrics_after["fidelity"]
    s.restore(0)
    assert np.array_equal(s.student.coef_, before) and len(s.provenance) == 3
    assert s.provenance.table()[2]["label"] == "restore step 0"
    with pytest.raises(ValueError, match="no provenance step"):
        s.restore(9)
    again = Provenance.from_json(s.provenance.to_json())
    assert np.array_equal(again.steps[1].coef, s.provenance.steps[1].coef)
    with pytest.raises(ValueError, match="not an Infi provenance"):
        Provenance.from_json('{"steps": []}')


def test_cached_student_scores_follow_every_change_of_the_weights(monkeypatch):
    """evaluate() predicts again only the classes an edit changed; after edits, a restore, an undo
    and a new fit its probabilities must equal a full prediction, on held-out rows and 'shifted'."""
    s = demo_session(n=120, members=3)

    def full(split=None):
        X = s.concepts.X[s.val_idx] if split is None else s.eval_sets[split].concepts.X
        return s.student.predict_proba(X)

    asked: list[int] = []
    real = type(s.student).class_scores
    monkeypatch.setattr(type(s.student), "class_scores",
                        lambda self, X, classes=None: asked.append(None if classes is None else len(classes))
                        or real(self, X, classes))
    s.evaluate()
    asked.clear()
    s.tune([TuningAction("grass", "remove", "triangle")])
    assert asked == [1, 1]  # held-out and shifted: only the refit class, once each
    for change in (lambda: s.tune([TuningAction("sky", "remove")]), lambda: s.restore(0), s.undo,
                   lambda: s.distill(n_members=2)):
        change()
        assert np.allclose(s.student_proba(), full(), atol=1e-12)
        assert np.allclose(s.student_proba("shifted"), full("shifted"), atol=1e-12)


def test_class_mismatch_between_teacher_and_dataset_is_an_error():
    s = Session()
    s.set_dataset(from_world(generate_world(10, seed=1, shapes=["circle", "star"])))
    with pytest.raises(ValueError, match="do not match"):
        s.run_teacher(DemoTeacherAdapter())
    assert s.dataset is not None  # the session survives


def test_shortcut_repair_on_a_small_world():
    """Removing the background concepts makes the student right on shifted images, at little
    cost in fidelity to the (shortcut-using) teacher on biased ones."""
    from infi.demo.world import BACKGROUNDS

    s = Session(seed=0)
    s.set_dataset(from_world(generate_world(1000, split="biased", seed=31)),
                  {"shifted": from_world(generate_world(400, split="shifted", seed=32))})
    s.run_teacher(DemoTeacherAdapter())
    s.set_encoder("demo")
    s.extract_concepts(demo_corpus(), "global")
    before = s.distill(n_members=10)
    assert before["fidelity"] >= 0.9
    after = s.tune([TuningAction(bg, "remove") for bg in BACKGROUNDS]).metrics_after
    assert after["shifted_accuracy"] - before["shifted_accuracy"] >= 0.10
    assert before["fidelity"] - after["fidelity"] <= 0.05


def test_a_new_encoder_clears_the_prg_student_that_used_the_old_one():
    """Drift bug: set_encoder kept a PRG student although run_prg's teacher is that encoder."""
    s = Session(seed=0)
    s.set_dataset(from_world(generate_world(60, split="shifted", seed=5)))
    s.set_encoder("demo")
    s.run_prg(PRGConfig(epochs=1, batch_size=32))
    assert s.prg_run is not None
    assert s.set_encoder("another-encoder") == ["compact model"] and s.prg_run is None


def test_choosing_the_encoder_a_compact_model_already_used_keeps_it():
    """Walk finding: the first concept extraction set the (default) encoder and dropped a compact
    model trained from the teacher before concepts existed, with that same encoder."""
    s = Session(seed=0)
    s.set_dataset(from_world(generate_world(60, split="shifted", seed=5)))
    s.run_teacher(DemoTeacherAdapter())
    run = s.compact("teacher", PRGConfig(epochs=1, batch_size=32), views=1)  # no encoder chosen yet
    assert run.figures["encoder"] == "demo" and run.figures["views_per_image"] == 1
    assert s.set_encoder("demo") == [] and s.prg_run is run
    assert run.figures["source_fingerprint"] == s.source_fingerprint("teacher")


def test_distill_takes_a_config_and_names_a_bad_setting():
    s = demo_session(n=80, members=2)
    assert s.student_params == asdict(DistillConfig(n_members=2))
    with pytest.raises(ConfigError, match="alpha: must be >= 0"):
        s.distill(alpha=-1.0)
    with pytest.raises(ConfigError, match="validation_share"):
        s.distill(DistillConfig(validation_share=0.95))
    assert s.student is not None  # a refused setting keeps the student


def test_labels_are_reindexed_to_the_teachers_class_order():
    data = from_world(generate_world(30, seed=3))
    order = tuple(reversed(data.class_names))
    labels = Session.labels_for(data, order)
    assert [order[i] for i in labels] == [data.class_names[i] for i in data.labels]
    with pytest.raises(InputError, match="do not match"):
        Session.labels_for(data, ("a", "b"))


def test_from_saved_refuses_parts_that_do_not_fit(session):
    parts = dict(seed=0, dataset=None, dataset_ref={"ids": list(session.dataset.ids)},
                 eval_sets={}, teacher_name="t", class_names=session.class_names,
                 labels=session.labels, P=session.P, encoder_id="demo", corpus=session.corpus,
                 concepts=session.concepts, student=session.student,
                 student_params=session.student_params, split=(session.train_idx, session.val_idx),
                 bounds=(session.lower, session.upper), provenance=session.provenance)
    rebuilt = Session.from_saved(**parts)
    assert np.array_equal(rebuilt.student.coef_, session.student.coef_)
    assert rebuilt.evaluate()["fidelity"] == session.evaluate()["fidelity"]
    with pytest.raises(InputError, match="ids for"):
        Session.from_saved(**{**parts, "dataset_ref": {"ids": ["a", "b"]}})
    with pytest.raises(InputError, match="teacher outputs of shape"):
        Session.from_saved(**{**parts, "P": session.P[:, :3]})
    with pytest.raises(InputError, match="split"):
        Session.from_saved(**{**parts, "split": (session.train_idx + 10_000, session.val_idx)})


def test_group_edits_expand_by_corpus_category_and_survive_a_bundle(session):
    from infi.bundle import load_session, save_session

    s = load_session(save_session(session))
    assert s.concept_groups()["background"] == ["grass", "sky", "sand", "water", "brick", "plain"]
    step = s.tune([TuningAction.for_group("background", "remove", "triangle")], hold_others=0.25)
    c = s.class_names.index("triangle")
    bg = [s.concepts.names.index(n) for n in s.concept_groups()["background"]]
    assert np.all(s.student.coef_[:, bg, c] == 0)
    assert {a["group"] for a in step.actions} == {"background"} and len(step.actions) == 6
    assert s.provenance.table()[-1]["actions"].startswith("remove background on triangle (grass, sky")
    again = load_session(save_session(s))
    assert again.provenance.steps[-1].hold_others == 0.25
    assert again.student.alpha_ == s.student.alpha_ and again.student.path_ == s.student.path_
    for row in s.compensation():
        assert row["class"] == "triangle" and row["concept"] not in s.concept_groups()["background"]


def test_in_place_names_the_edits_that_would_change_nothing():
    """Locking a concept twice changed nothing and Apply failed; the page must say so first."""
    session = demo_session(n=160, members=2)
    lock = TuningAction("grass", "lock", "triangle")
    assert session.in_place([lock]) == [False]
    session.tune([lock])
    fresh = TuningAction("sky", "remove", "triangle")
    assert session.in_place([lock, fresh]) == [True, False]
    with pytest.raises(InputError, match="nothing to change"):
        session.tune([lock])
    group = TuningAction.for_group("background", "remove", "triangle")
    assert session.in_place([group]) == [False]
    session.tune([group])
    assert session.in_place([group, TuningAction("sky", "remove", "triangle")]) == [True, True]


def test_region_scores_follow_the_chosen_dense_method_and_a_bundle_keeps_it():
    from infi.bundle import load_session, save_session

    s = demo_session(n=120, members=2)
    vanilla = s.extract_concepts(demo_corpus(), "patches").X.copy()
    clear = s.extract_concepts(demo_corpus(), "patches", dense="clearclip").X
    assert s.dense == "clearclip" and s.embeddings.dense == "clearclip"
    assert not np.allclose(vanilla, clear)  # other patch embeddings, other region scores
    assert np.array_equal(s.extract_concepts(demo_corpus(), "patches", dense="vanilla").X, vanilla)
    s.extract_concepts(demo_corpus(), "patches", dense="naclip")
    s.distill(n_members=2)
    assert load_session(save_session(s)).dense == "naclip"
    with pytest.raises(InputError, match="dense: 'gem' is not one of"):
        s.extract_concepts(demo_corpus(), "patches", dense="gem")


def test_region_scores_are_streamed_equal_all_at_once_and_keep_no_patches():
    from infi.concepts import build_bank, concept_scores
    from infi.encoders import shared_encoder

    s = demo_session(n=150, members=2)
    for mode in ("patches", "segments"):
        X = s.extract_concepts(demo_corpus(), mode, dense="sclip").X
        encoder = shared_encoder("demo")
        whole = encoder.embed_images(s.dataset.arrays, patches=True, dense="sclip")
        expected = concept_scores(whole, build_bank(encoder, demo_corpus()), mode).X
        np.testing.assert_allclose(X, expected, atol=1e-5)
        assert s.embeddings.patches is None and s.embeddings.global_.shape == (150, encoder.dim)
        assert all(e.embeddings.patches is None for e in s.eval_sets.values())
    hits = s.cache.hits
    s.extract_concepts(demo_corpus(), "segments", dense="sclip")  # a second run is free
    assert s.cache.hits == hits + 1 + len(s.eval_sets)


def test_the_array_cache_is_bounded_in_bytes():
    from infi.cache import ArrayCache

    cache = ArrayCache(max_items=100, max_bytes=3 * 4000)
    for i in range(5):
        cache.put(str(i), {"a": np.zeros(1000, np.float32)})
    assert cache.nbytes <= 3 * 4000 and cache.get("0") is None and cache.get("4") is not None


def test_region_resolution_is_a_setting_of_region_modes_and_a_bundle_keeps_it():
    from infi.bundle import load_session, save_session

    s = demo_session(n=100, members=2)
    native = s.extract_concepts(demo_corpus(), "patches").X.copy()
    fine = s.extract_concepts(demo_corpus(), "patches", resolution=128).X
    assert s.resolution == 128 and not np.allclose(native, fine)
    s.distill(n_members=2)
    assert load_session(save_session(s)).resolution == 128
    s.extract_concepts(demo_corpus(), "global")
    assert s.resolution == 128  # global mode leaves the region setting alone


def test_memory_kept_per_image_after_region_extraction_is_small():
    """Patch embeddings [N, P, D] once stayed in the session (~200 KB an image for ViT-B/16)."""
    def kept(n):
        s = demo_session(n=n, members=2)
        s.extract_concepts(demo_corpus(), "segments")
        arrays = [s.embeddings.global_, s.concepts.X, *(a for v in s.cache._memory.values() for a in v.values())]
        arrays += [a for e in s.eval_sets.values() for a in (e.embeddings.global_, e.concepts.X)]
        return sum({id(a): a.nbytes for a in arrays}.values())

    per_image = (kept(120) - kept(60)) / 60
    assert per_image <= 16 * 1024, per_image


def test_a_compact_cnn_learns_the_repaired_student_without_reading_a_label(monkeypatch):
    s = demo_session(n=240, members=2)
    s.tune([TuningAction.for_group("background", "remove")])
    config = PRGConfig(epochs=2, batch_size=32, method="kd")
    labelled = []

    def no_labels(*args, **kwargs):
        raise AssertionError("a label was read while training")

    with monkeypatch.context() as m:
        m.setattr(Session, "labels_for", no_labels)
        run = s.compact("student", config, views=2, evaluate=False,
                        view_progress=lambda done, total: labelled.append((done, total)))
    assert run.figures["source"] == "student" and run.targets.logits.shape == (240, len(s.class_names))
    assert run.figures["views_per_image"] == 2 and labelled[-1] == (480, 480)  # only the views were labelled
    repaired = s.student.predict_proba(s.concepts.X).argmax(1)
    assert np.array_equal(run.targets.logits.argmax(1), repaired)  # the edited student's answers are the targets
    assert run.figures["agreement_with_source"] > 1 / len(s.class_names) + 0.2
    assert s.prg_run is run
    evaluated = s.compact("teacher", config, views=1)
    assert {"shifted_source_accuracy", "shifted_compact_accuracy", "shifted_teacher_accuracy", "tower_parameters",
            "teacher_ms_per_image", "head_parameters"} <= set(evaluated.figures)
    assert evaluated.figures["shifted_source_accuracy"] == evaluated.figures["shifted_teacher_accuracy"]
    zero = s.compact("zero-shot", config, views=0)
    assert zero.figures["source"] == "zero-shot" and zero.figures["views_per_image"] == 0
    with pytest.raises(InputError, match="choose one of zero-shot, teacher, student"):
        s.compact("labels")


def test_mixed_views_of_a_file_teacher_cannot_be_labelled_and_the_run_says_so(tmp_path):
    s = demo_session(n=120, members=2)
    s.teacher = None  # outputs from a file (or a restored session): nothing to ask about new images
    run = s.compact("teacher", PRGConfig(epochs=1, batch_size=32), views=4, evaluate=False)
    assert run.figures["views_per_image"] == 0
    assert any("no mixed view could be labelled" in note for note in run.figures["notes"])
