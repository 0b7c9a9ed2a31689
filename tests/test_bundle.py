"""Session bundles: exact round trips, uploaded images by reference, refusing what is not one."""

import json

import numpy as np
import pytest

from infi.bundle import BundleError, concept_frame, export_student, load_session, save_session
from infi.tuning import TuningAction
from tests.helpers import demo_session, make_zip, uploaded_session, world_as_zip


@pytest.fixture(scope="module")
def session():
    return demo_session()


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
