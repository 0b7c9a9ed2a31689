"""Session chain, invalidation, tuning with provenance, bundles, the cache and the CLI."""

import json

import numpy as np
import pytest

from infi import __main__ as cli
from infi.bundle import (
    BundleError,
    concept_frame,
    export_student,
    load_session,
    save_session,
)
from infi.cache import ArrayCache, cache_key
from infi.demo.plugin import demo_corpus
from infi.demo.teacher import DemoTeacherAdapter
from infi.demo.world import from_world, generate_world
from infi.session import Session, SessionError
from infi.tuning import Provenance, TuningAction
from tests.helpers import make_zip


def demo_session(n=240, members=4, seed=0) -> Session:
    s = Session(seed=seed)
    s.set_dataset(from_world(generate_world(n, seed=21)),
                  {"shifted": from_world(generate_world(120, split="shifted", seed=22))})
    s.run_teacher(DemoTeacherAdapter())
    s.set_encoder("demo")
    s.extract_concepts(demo_corpus(), "global")
    s.distill(n_members=members)
    return s


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


def test_class_mismatch_between_teacher_and_dataset_is_an_error():
    s = Session()
    s.set_dataset(from_world(generate_world(10, seed=1, shapes=["circle", "star"])))
    with pytest.raises(ValueError, match="do not match"):
        s.run_teacher(DemoTeacherAdapter())
    assert s.dataset is not None  # the session survives


def test_bundle_round_trips_exactly(session, tmp_path):
    session.tune([TuningAction("sky", "downtune", "circle", scale=0.5)])
    blob = save_session(session)
    loaded = load_session(blob)
    assert np.array_equal(loaded.concepts.X, session.concepts.X)
    assert np.array_equal(loaded.P, session.P)
    assert np.array_equal(loaded.student.coef_, session.student.coef_)
    assert np.array_equal(loaded.lower, session.lower)
    assert loaded.provenance.to_json() == session.provenance.to_json()
    assert loaded.evaluate()["fidelity"] == session.evaluate()["fidelity"]
    assert loaded.dataset.content_hash == session.dataset.content_hash
    # A loaded session can go on being tuned.
    loaded.tune([TuningAction("grass", "remove")])
    w, card = export_student(loaded.student, loaded.concepts.names, loaded.class_names, tmp_path)
    info = json.loads(card.read_text())
    assert info["classes"] == list(loaded.class_names) and len(info["concepts"]) == len(loaded.concepts.names)
    assert w.stat().st_size > 0


def world_as_zip(n: int, seed: int) -> bytes:
    """A Shapes World saved as an ImageFolder ZIP, i.e. uploaded images the bundle cannot rebuild."""
    import io

    from PIL import Image

    world = generate_world(n, seed=seed)
    members = {}
    for i, (image, label) in enumerate(zip(world.images, world.labels)):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "PNG")
        members[f"{world.class_names[label]}/img_{i:03d}.png"] = buf.getvalue()
    return make_zip(members)


def uploaded_session(blob: bytes) -> Session:
    from infi.data import from_zip
    from infi.encoders import shared_encoder
    from infi.teachers import ClipZeroShotTeacher

    s = Session(seed=0)
    s.set_dataset(from_zip(blob))
    s.run_teacher(ClipZeroShotTeacher(shared_encoder("demo"), s.dataset.class_names, ("a photo of a {}",)))
    s.set_encoder("demo")
    s.extract_concepts(demo_corpus(), "global")
    s.distill(n_members=2)
    return s


def test_bundle_of_uploaded_images_keeps_their_reference_and_reattaches_them():
    from infi.data import from_zip

    blob = world_as_zip(80, seed=31)
    original = uploaded_session(blob)
    restored = load_session(save_session(original))
    assert restored.dataset is None and restored.student is not None
    assert restored.dataset_ref["content_hash"] == original.dataset.content_hash
    assert restored.status()["dataset"] == "80 images referenced (not loaded)"
    assert list(concept_frame(restored).index) == list(original.dataset.ids)  # exports keep the ids
    # Saving again keeps the reference: nothing about the images is lost on a round trip.
    again = load_session(save_session(restored))
    assert again.dataset_ref["ids"] == list(original.dataset.ids)
    # The same images come back without clearing anything ...
    coef = restored.student.coef_.copy()
    assert restored.set_dataset(from_zip(blob)) == []
    assert restored.dataset.content_hash == original.dataset.content_hash and restored.dataset_ref is None
    assert np.array_equal(restored.student.coef_, coef) and len(restored.provenance) == 1
    # ... other images replace the session's results, and say so.
    cleared = again.set_dataset(from_zip(world_as_zip(80, seed=32)))
    assert "student and provenance" in cleared and again.student is None and again.dataset_ref is None


def test_bundle_refuses_anything_that_is_not_a_bundle():
    with pytest.raises(BundleError, match="not an Infi session"):
        load_session(b"pickle?")
    with pytest.raises(BundleError, match="unexpected contents"):
        load_session(make_zip({"manifest.json": b"{}", "payload.pkl": b"\x80\x04"}))
    with pytest.raises(BundleError, match="corrupt|not an Infi"):
        load_session(make_zip({"manifest.json": b"{}", "arrays.safetensors": b"xx",
                               "provenance.json": b"{}"}))


def test_cache_makes_the_second_embedding_free(tmp_path):
    cache = ArrayCache(tmp_path)
    images = from_world(generate_world(40, seed=3))
    s1 = Session(cache=cache)
    s1.set_dataset(images)
    s1.set_encoder("demo")
    first = s1.embed(patches=False)
    assert cache.misses == 1
    s2 = Session(cache=ArrayCache(tmp_path))  # a fresh process reads the disk entry
    s2.set_dataset(images)
    s2.set_encoder("demo")
    second = s2.embed(patches=False)
    assert s2.cache.hits == 1 and np.array_equal(first.global_, second.global_)
    assert cache_key("a", 1) == cache_key("a", 1) != cache_key("a", 2)


def test_cli_and_session_give_identical_students(tmp_path, monkeypatch):
    monkeypatch.setenv("INFI_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "s.infi"
    rc = cli.main(["distill", "--world", "biased:120:21", "--members", "3", "--out", str(out)])
    assert rc == 0
    via_cli = load_session(out.read_bytes())
    direct = Session(seed=0)
    direct.set_dataset(from_world(generate_world(120, seed=21)))
    direct.run_teacher(DemoTeacherAdapter())
    direct.set_encoder("demo")
    direct.extract_concepts(demo_corpus(), "global")
    direct.distill(n_members=3)
    assert np.array_equal(via_cli.student.coef_, direct.student.coef_)
    actions = tmp_path / "a.json"
    actions.write_text(json.dumps([{"concept": "grass", "kind": "remove", "class_name": "triangle"}]))
    assert cli.main(["tune", "--session", str(out), "--actions", str(actions), "--out", str(out)]) == 0
    assert cli.main(["export", "--session", str(out), "--out", str(tmp_path / "exp")]) == 0
    assert (tmp_path / "exp" / "student.safetensors").is_file()
    assert (tmp_path / "exp" / "concepts.parquet").is_file()
    actions.write_text('[{"concept": "nope", "kind": "remove"}]')
    assert cli.main(["tune", "--session", str(out), "--actions", str(actions), "--out", str(out)]) == 2


def test_cli_reads_a_predictions_file_and_names_a_missing_one(tmp_path, monkeypatch, capsys):
    import pandas as pd

    monkeypatch.setenv("INFI_CACHE_DIR", str(tmp_path / "cache"))
    data = from_world(generate_world(120, seed=21))
    teacher = DemoTeacherAdapter()
    P = teacher.predict_proba(data)
    table = pd.DataFrame(P, columns=list(teacher.class_names))
    table.insert(0, "id", list(data.ids))
    preds = tmp_path / "teacher.csv"
    table.iloc[::-1].to_csv(preds, index=False)  # any row order: matched by id
    out = tmp_path / "p.infi"
    assert cli.main(["distill", "--world", "biased:120:21", "--teacher", f"predictions:{preds}",
                     "--members", "2", "--out", str(out)]) == 0
    assert np.allclose(load_session(out.read_bytes()).P, P, atol=1e-6)
    capsys.readouterr()
    assert cli.main(["distill", "--world", "biased:120:21", "--teacher", "predictions:typo.csv",
                     "--out", str(out)]) == 2
    assert "typo.csv: no file at typo.csv" in capsys.readouterr().err


def test_cli_help_for_each_command(capsys):
    for command in ("embed", "concepts", "distill", "tune", "export", "prg"):
        with pytest.raises(SystemExit) as exit_:
            cli.main([command, "--help"])
        assert exit_.value.code == 0
        assert "usage: infi " + command in capsys.readouterr().out


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
