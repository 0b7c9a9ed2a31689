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


def _tampered(blob: bytes, manifest=None, arrays=None, provenance=None, compress_arrays=False) -> bytes:
    """The bundle with its members rewritten by the given functions (each takes and returns the
    parsed member)."""
    import io
    import zipfile

    from safetensors.numpy import load, save

    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        m = json.loads(zf.read("manifest.json"))
        a = dict(load(zf.read("arrays.safetensors")))
        p = json.loads(zf.read("provenance.json"))
    m, a, p = (manifest or (lambda x: x))(m), (arrays or (lambda x: x))(a), (provenance or (lambda x: x))(p)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(m))
        zf.writestr("arrays.safetensors", a if isinstance(a, bytes) else save(a))
        zf.writestr("provenance.json", json.dumps(p))
    return out.getvalue()


def _first_member_only(provenance):
    """Every snapshot's weights cut to one ensemble member: restoring it would broadcast."""
    from infi.tuning import _decode, _encode

    steps = provenance["steps"] if isinstance(provenance, dict) else provenance
    for step in steps:
        step["coef"] = _encode(_decode(step["coef"])[:1])
    return provenance


def _with(key, fn):
    return lambda a: {**a, key: fn(a[key])}


@pytest.mark.parametrize("change, message", [
    (dict(arrays=_with("student/coef", lambda w: w[:, :-1])), "student coef: shape"),
    (dict(arrays=_with("student/mean", lambda m: m[:-1])), "student mean: shape"),
    (dict(arrays=_with("val_idx", lambda i: i + 10**6)), "validation split must list row numbers"),
    (dict(arrays=_with("P", lambda P: np.full_like(P, np.nan))), "saved teacher outputs: probabilities contain NaN"),
    (dict(arrays=_with("X", lambda X: X * np.inf)), "concept scores: hold NaN or inf"),
    (dict(arrays=_with("labels", lambda y: y + 100)), "labels: expected"),
    (dict(provenance=lambda p: _first_member_only(p)),
     "provenance step 0 holds weights of another shape"),
    (dict(manifest=lambda m: {**m, "dataset": {**m["dataset"], "source": {**m["dataset"]["source"], "n": 150_000}}}),
     r"the dataset claims \[.*150000\] images for \d+ rows"),
])
def test_tampered_bundles_are_refused_with_the_reason(session, change, message):
    """Each of these once loaded and then failed inside a page (einsum shape, IndexError) or
    took minutes and gigabytes (a world of 150,000 images)."""
    with pytest.raises(ValueError, match=message):
        load_session(_tampered(save_session(session), **change))


def test_a_member_that_inflates_past_the_budget_stops_at_the_limit(session, monkeypatch):
    from infi.errors import LimitError

    blob = _tampered(save_session(session), arrays=lambda a: bytes(40 * 1024**2))
    assert len(blob) < 1024**2  # zeros compress ~1000:1
    monkeypatch.setenv("INFI_LIMIT_MAX_BUNDLE_BYTES", str(8 * 1024**2))
    with pytest.raises(LimitError, match="over the limit of 8.0 MB|more than 8 MB"):
        load_session(blob)
