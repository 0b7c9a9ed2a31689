"""Teacher adapters: predictions files with every kind of mistake, TorchScript, zero-shot, demo."""

import io

import numpy as np
import pandas as pd
import pytest
import torch

from infi.demo.teacher import DemoTeacherAdapter
from infi.demo.world import from_world, generate_world
from infi.errors import TeacherError
from infi.teachers import (
    TORCHSCRIPT_WARNING,
    ClipZeroShotTeacher,
    TorchScriptTeacher,
    from_spec,
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
    with pytest.raises(ValueError, match="object arrays are pickles and are never loaded"):
        load_predictions(buf.getvalue(), "evil.npy")


def test_prediction_files_are_sized_from_their_headers_before_parsing(images):
    """A 200-byte NPY claiming a huge shape, a CSV of too many columns and a tiny Parquet of many
    rows once took gigabytes; each is refused from its header or metadata now."""
    from infi.errors import LimitError, TeacherError
    from infi.limits import Budget

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**9, 10**3)})
    liar = header.getvalue()  # the header alone: magic, shape and dtype, no data
    assert liar.startswith(b"\x93NUMPY") and len(liar) < 200
    with pytest.raises(LimitError, match="rows: 1,000,000,000 is over the limit"):
        load_predictions(liar, "liar.npy")
    small = Budget(max_prediction_rows=10**12, max_prediction_columns=10**6)
    with pytest.raises(TeacherError, match="more than the file holds"):
        load_predictions(liar, "liar.npy", budget=small)
    wide = ("id," + ",".join(f"c{i}" for i in range(50)) + "\n").encode()
    with pytest.raises(LimitError, match="columns: 51 is over the limit of 20"):
        load_predictions(wide, "wide.csv", budget=Budget(max_prediction_columns=20))
    import pandas as pd

    buf = io.BytesIO()
    pd.DataFrame({"id": [f"x{i}" for i in range(100)], "a": 0.5, "b": 0.5}).to_parquet(buf)
    with pytest.raises(LimitError, match="rows: 100 is over the limit of 99"):
        load_predictions(buf.getvalue(), "long.parquet", budget=Budget(max_prediction_rows=99))


def test_semicolons_utf16_and_negative_scores_are_read_and_said(images):
    ids = images.ids
    rows = "\n".join(f"{i};{-1.5};{2.0}" for i in ids)
    text = f"id;a;b\n{rows}\n"
    teacher = load_predictions(text.encode("utf-16"), "scores.csv")
    P = teacher.predict_proba(images)
    assert P.shape == (len(ids), 2) and np.allclose(P.sum(1), 1)
    assert "read as logits" in teacher.notes[0] and "from -1.5 to 2" in teacher.notes[0]


@pytest.mark.parametrize("mutate, message", [
    (lambda ids, P: (ids[:-1], P[:-1]), "no prediction for 1 image"),
    (lambda ids, P: (ids, np.where(np.arange(3) == 1, np.nan, P)), "NaN or inf"),
    (lambda ids, P: (ids, P * 0.5), "do not sum to 1"),
])
def test_predictions_file_errors_are_named(images, mutate, message):
    P = np.random.default_rng(3).dirichlet(np.ones(3), size=6)
    ids, values = mutate(list(images.ids), P)
    teacher = load_predictions(csv_bytes(ids, values), "p.csv")
    with pytest.raises(ValueError, match=message):
        teacher.predict_proba(images)


def test_a_file_covering_more_images_or_naming_them_by_file_name_is_used_and_said(images):
    """A predictions file covering more images than uploaded was refused; file names failed."""
    P = np.random.default_rng(4).dirichlet(np.ones(3), size=len(images) + 2)
    wider = load_predictions(csv_bytes([*images.ids, "other-1", "other-2"], P), "p.csv")
    assert np.allclose(wider.predict_proba(images), P[:len(images)], atol=1e-6)
    assert wider.notes == ["p.csv has 2 row(s) for images that are not in the dataset; they were ignored"]
    from infi.data import from_arrays

    nested = from_arrays([f"cat/{i}.png" for i in range(6)], images.as_arrays(32), None, None, {"kind": "t"})
    bare = load_predictions(csv_bytes([f"{i}.png" for i in range(6)], P[:6]), "bare.csv")
    assert np.allclose(bare.predict_proba(nested), P[:6], atol=1e-6)
    assert "by file name only" in bare.notes[-1]
    with pytest.raises(ValueError, match="no prediction for 6 image.*the path inside the ZIP"):
        load_predictions(csv_bytes([f"x{i}" for i in range(6)], P[:6]), "wrong.csv").predict_proba(nested)


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


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    folder = tmp_path_factory.mktemp("tiny_vit")
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=37, num_labels=3, id2label={0: "a", 1: "b", 2: "c"},
                       label2id={"a": 0, "b": 1, "c": 2})
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


class _Canary:
    """Unpickling this writes a file: the proof that a pickle ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_model_folders_refuse_pickles_broken_weights_and_weights_that_match_nothing(tiny_classifier, tmp_path):
    import shutil

    from safetensors.numpy import save_file

    from infi.errors import ModelLoadError
    from infi.teachers import HFClassifierTeacher

    assert HFClassifierTeacher(str(tiny_classifier)).class_names == ("a", "b", "c")

    def variant(name, weights):
        folder = tmp_path / name
        shutil.copytree(tiny_classifier, folder)
        (folder / "model.safetensors").unlink()
        weights(folder)
        return str(folder)

    canary = tmp_path / "pickle-ran"
    pickled = variant("pickled", lambda f: torch.save({"x": _Canary(canary)}, f / "pytorch_model.bin"))
    with pytest.raises(ModelLoadError, match="pickled .bin files are never loaded"):
        HFClassifierTeacher(pickled)
    assert not canary.exists()
    broken = variant("broken", lambda f: (f / "model.safetensors").write_bytes(
        (tiny_classifier / "model.safetensors").read_bytes()[:200]))
    with pytest.raises(ModelLoadError, match="Could not load the classifier"):
        HFClassifierTeacher(broken)
    junk = variant("junk", lambda f: save_file({"junk": np.zeros(3, np.float32)}, f / "model.safetensors"))
    with pytest.raises(ModelLoadError, match="do not match the model .* random weights"):
        HFClassifierTeacher(junk)


class _Classifier(torch.nn.Module):
    """A tiny image classifier [B, 3, 32, 32] -> [B, width] logits; ``nan`` makes every output NaN."""

    def __init__(self, width: int, nan: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.head = torch.nn.Linear(4, width)
        self.nan = nan

    def forward(self, x):
        out = self.head(self.conv(x).mean(dim=(2, 3)))
        return out * float("nan") if self.nan else out


def _onnx(tmp_path, model) -> bytes:
    from infi.export import export_onnx

    path = tmp_path / "m.onnx"
    diff = export_onnx(model, torch.rand(2, 3, 32, 32), path)
    assert diff <= 1e-4 or model.nan  # NaN outputs differ from themselves
    return path.read_bytes()


def test_onnx_teachers_run_and_are_checked_like_any_teacher(images, tmp_path):
    from infi.teachers import OnnxTeacher, from_spec

    names = tuple(images.class_names)
    model = _Classifier(len(names)).eval()
    data = _onnx(tmp_path, model)
    teacher = from_spec("onnx:", names, data=data, filename="clf.onnx", normalize=False)
    assert teacher.image_size == 32  # stated by the model (224 was asked by default)
    teacher = OnnxTeacher(data, names, image_size=32, normalize=False)
    P = teacher.predict_proba(images)
    x = torch.from_numpy(images.as_arrays(32)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        expected = torch.softmax(model(x).double(), dim=1).numpy()
    np.testing.assert_allclose(P, expected, atol=1e-5)
    with pytest.raises(TeacherError, match=r"returned shape \(6, 3\), expected \[batch, 2\]"):
        OnnxTeacher(_onnx(tmp_path, _Classifier(3).eval()), names[:2], image_size=32).predict_proba(images)
    with pytest.raises(TeacherError, match="returned NaN or inf"):
        OnnxTeacher(_onnx(tmp_path, _Classifier(len(names), nan=True).eval()), names,
                    image_size=32).predict_proba(images)
    with pytest.raises(TeacherError, match="not an ONNX model onnxruntime can run"):
        OnnxTeacher(b"not onnx at all", names)


@pytest.mark.parametrize("spec", ["pt2:model.pt2", "export:model.pt2", "model.pt2"])
def test_a_torch_export_program_is_refused_as_a_teacher_with_the_reason(spec, tmp_path):
    """torch.export.load unpickles parts of a .pt2 without weights_only: not for untrusted files."""
    with pytest.raises(TeacherError, match=r"\.pt2\) is not accepted.*onnx:FILE"):
        from_spec(spec, ("a", "b"))


def test_a_class_count_mismatch_names_the_missing_and_extra_columns(images):
    """A file without 'star' (or with an 'extra' column) was refused by its counts alone."""
    from infi.teachers import from_spec

    classes = ("circle", "square", "triangle", "star", "cross", "hexagon")
    P = np.random.default_rng(5).dirichlet(np.ones(5), size=len(images))
    table = pd.DataFrame(P, columns=["circle", "square", "triangle", "cross", "hexagon"])
    table.insert(0, "id", images.ids)
    with pytest.raises(ValueError, match=r"5 classes, but the dataset has 6; missing: \['star'\]"):
        from_spec("predictions:", classes, data=table.to_csv(index=False).encode(), filename="p.csv")
    table["extra"] = 0.0
    table["star"] = 0.0
    with pytest.raises(ValueError, match=r"7 classes.*not a class of the dataset: \['extra'\]"):
        from_spec("predictions:", classes, data=table.to_csv(index=False).encode(), filename="p.csv")
