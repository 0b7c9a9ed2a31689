"""Teacher adapters: predictions files with every kind of mistake, TorchScript, zero-shot, demo."""

import io

import numpy as np
import pandas as pd
import pytest
import torch

from infi.demo.teacher import DemoTeacherAdapter
from infi.demo.world import from_world, generate_world
from infi.teachers import (
    TORCHSCRIPT_WARNING,
    ClipZeroShotTeacher,
    TorchScriptTeacher,
    load_predictions,
    softmax,
)


@pytest.fixture(scope="module")
def images():
    return from_world(generate_world(6, seed=11))


def csv_bytes(ids, values, classes=("a", "b", "c")):
    frame = pd.DataFrame(values, columns=list(classes))
    frame.insert(0, "id", ids)
    return frame.to_csv(index=False).encode()


def test_csv_probabilities_matched_by_id_in_any_order(images):
    P = np.random.default_rng(0).dirichlet(np.ones(3), size=6)
    order = [5, 3, 1, 0, 2, 4]
    teacher = load_predictions(csv_bytes([images.ids[i] for i in order], P[order]), "p.csv")
    assert np.allclose(teacher.predict_proba(images), P, atol=1e-6)
    assert teacher.class_names == ("a", "b", "c")


def test_logits_are_detected_and_softmaxed(images):
    logits = np.random.default_rng(1).normal(0, 3, (6, 3))
    teacher = load_predictions(csv_bytes(images.ids, logits), "l.csv")
    assert np.allclose(teacher.predict_proba(images), softmax(logits), atol=1e-6)


def test_parquet_and_npy(images):
    P = np.random.default_rng(2).dirichlet(np.ones(3), size=6)
    frame = pd.DataFrame(P, columns=["a", "b", "c"])
    frame.insert(0, "image", images.ids)
    buf = io.BytesIO()
    frame.to_parquet(buf)
    assert np.allclose(load_predictions(buf.getvalue(), "p.parquet").predict_proba(images), P, atol=1e-6)
    buf = io.BytesIO()
    np.save(buf, P)
    npy = load_predictions(buf.getvalue(), "p.npy", class_names=["x", "y", "z"])
    assert np.allclose(npy.predict_proba(images), P, atol=1e-6)


def test_pickled_npy_is_refused(images):
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="plain numeric"):
        load_predictions(buf.getvalue(), "evil.npy")


@pytest.mark.parametrize("mutate, message", [
    (lambda ids, P: (ids[:-1], P[:-1]), "no prediction for 1 image"),
    (lambda ids, P: (ids + ["stranger"], np.vstack([P, P[:1]])), "not in the dataset"),
    (lambda ids, P: (ids, np.where(np.arange(3) == 1, np.nan, P)), "NaN or inf"),
    (lambda ids, P: (ids, P * 0.5), "do not sum to 1"),
])
def test_predictions_file_errors_are_named(images, mutate, message):
    P = np.random.default_rng(3).dirichlet(np.ones(3), size=6)
    ids, values = mutate(list(images.ids), P)
    teacher = load_predictions(csv_bytes(ids, values), "p.csv")
    with pytest.raises(ValueError, match=message):
        teacher.predict_proba(images)


def test_missing_predictions_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file at .*nope.csv"):
        load_predictions(tmp_path / "nope.csv", "nope.csv")


def test_wrong_class_count_missing_id_column_and_bad_suffix(images):
    P = np.random.default_rng(4).dirichlet(np.ones(3), size=6)
    with pytest.raises(ValueError, match="3 classes, but the dataset has 6"):
        load_predictions(csv_bytes(images.ids, P), "p.csv", expected_classes=6)
    with pytest.raises(ValueError, match="'id'"):
        load_predictions(pd.DataFrame(P).to_csv(index=False).encode(), "p.csv")
    with pytest.raises(ValueError, match=".csv, .parquet or .npy"):
        load_predictions(b"x", "p.pkl")


class TinyNet(torch.nn.Module):
    def forward(self, x):
        return torch.stack([x.mean(dim=(1, 2, 3)), -x.mean(dim=(1, 2, 3))], dim=1)


def test_torchscript_teacher_runs_and_warns(tmp_path, images):
    path = tmp_path / "m.pt"
    torch.jit.script(TinyNet()).save(str(path))
    teacher = TorchScriptTeacher(str(path), ("bright", "dark"), image_size=32)
    P = teacher.predict_proba(images)
    assert P.shape == (6, 2) and np.allclose(P.sum(1), 1, atol=1e-5)
    assert teacher.warning == TORCHSCRIPT_WARNING and "program" in TORCHSCRIPT_WARNING
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a TorchScript model"):
        TorchScriptTeacher(str(tmp_path / "bad.pt"), ("a", "b"))


@pytest.mark.parametrize("save", [
    lambda path: torch.save(torch.nn.Linear(3, 2), path),                       # a whole pickled model
    lambda path: torch.save({"w": torch.zeros(2)}, path),                        # a checkpoint
    lambda path: torch.save(torch.nn.Linear(3, 2), path, _use_new_zipfile_serialization=False),  # legacy
])
def test_torch_save_files_are_named_as_pickles_and_never_loaded(tmp_path, save, monkeypatch):
    path = tmp_path / "model.pt"
    save(str(path))
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: pytest.fail("a pickle reached torch.jit.load"))
    with pytest.raises(ValueError) as err:
        TorchScriptTeacher(str(path), ("a", "b"))
    message = str(err.value)
    assert message.startswith("model.pt: ") and "torch.save" in message and "torch.jit.save" in message


def test_hf_classifier_from_a_missing_folder_is_named_as_a_folder():
    from infi.teachers import HFClassifierTeacher

    with pytest.raises(FileNotFoundError, match="no folder '/no/such/classifier'"):
        HFClassifierTeacher("/no/such/classifier")


def test_zero_shot_weights_confident_templates_more(demo_encoder):
    teacher = ClipZeroShotTeacher(demo_encoder, ("circle", "square"), templates=("a {}", "{}"))
    per_template = np.stack([np.array([[5.0, 0.0], [0.0, 5.0]]), np.zeros((2, 2))])
    logits, weights = teacher.ensemble(per_template)
    assert weights[0] > weights[1] and np.isclose(weights.sum(), 1)
    assert np.allclose(logits, weights[0] * per_template[0])
    with pytest.raises(ValueError, match="placeholder"):
        ClipZeroShotTeacher(demo_encoder, ("a", "b"), templates=("no slot",))


def test_zero_shot_and_demo_teachers_give_distributions(demo_encoder, images):
    zs = ClipZeroShotTeacher(demo_encoder, ("circle", "square", "triangle"))
    P = zs.predict_proba(images)
    assert P.shape == (6, 3) and np.allclose(P.sum(1), 1, atol=1e-5)
    demo = DemoTeacherAdapter()
    assert demo.predict_proba(images).shape == (6, 6)
