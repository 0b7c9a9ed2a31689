"""Mixed views for the compact model: what they are made of, the memory clamp, who labels them."""

import numpy as np
import pytest

from infi import compact
from infi.errors import InputError


def test_a_cutmix_view_is_one_image_with_a_box_of_another_in_place():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)
    views = compact.cutmix_views(images, 40, seed=1)
    assert views.shape == (40, 16, 16, 3) and views.dtype == np.uint8
    for view in views:  # every pixel comes from the same place of one of the images
        assert all(any((images[k, y, x] == view[y, x]).all() for k in range(5)) for y in range(16) for x in range(16))
    mixed = sum(not any((view == img).all() for img in images) for view in views)
    assert mixed >= 30  # a view is rarely an image unchanged (only when a and b coincide)
    assert np.array_equal(compact.cutmix_views(images, 40, seed=1), views)  # reproducible


def test_views_are_clamped_to_the_memory_budget_and_the_run_says_so(monkeypatch):
    monkeypatch.setattr(compact, "MAX_VIEW_BYTES", 10 * 8 * 8 * 3 * 3)  # room for 3 views of 10 images
    assert compact.views_that_fit(10, 8, 8) == 3 and compact.views_that_fit(10, 8, 2) == 2
    with pytest.raises(InputError, match="views"):
        compact.views_that_fit(10, 8, -1)
    images = np.zeros((10, 8, 8, 3), np.uint8)
    calls = []

    def label(arrays):
        calls.append(len(arrays))
        return np.ones((len(arrays), 4), np.float32), np.full((len(arrays), 2), 0.5, np.float32)

    data = compact.prepare(images, label, np.eye(2, 4), ("a", "b"), views=8)
    assert len(data.images) == 40 and data.n_images == 10 and sum(calls) == 40
    assert "used 3 per image" in data.notes[0]


def test_known_answers_are_not_asked_again_and_targets_are_log_probabilities():
    images = np.zeros((6, 8, 8, 3), np.uint8)
    asked = []

    def label(arrays):
        asked.append(len(arrays))
        return np.zeros((len(arrays), 4), np.float32), np.tile([0.9, 0.1], (len(arrays), 1))

    known = (np.ones((6, 4), np.float32), np.tile([0.2, 0.8], (6, 1)))
    data = compact.prepare(images, label, np.eye(2, 4), ("a", "b"), views=2, known=known)
    assert asked == [12]  # the views alone
    assert np.allclose(np.exp(data.targets.logits[:6]), known[1])
    assert np.allclose(np.exp(data.targets.logits[6:]), [0.9, 0.1])
    assert np.array_equal(data.targets.embeddings[:6], known[0])
    with pytest.raises(InputError, match="choose one of"):
        compact.check_source("labels")


def test_the_export_zip_explains_itself_and_its_snippet_runs(tmp_path, monkeypatch):
    import io
    import runpy
    import zipfile

    from PIL import Image

    from infi import prg
    from infi.config import PRGConfig
    from infi.demo.world import generate_world

    world = generate_world(40, seed=3)
    rng = np.random.default_rng(0)
    targets = prg.TeacherTargets(rng.normal(size=(40, 8)).astype(np.float32),
                                 np.log(rng.dirichlet(np.ones(3), 40)).astype(np.float32),
                                 rng.normal(size=(3, 8)).astype(np.float32), ("a", "b", "c"))
    result = prg.train(world.images, targets, PRGConfig(method="kd", epochs=1, batch_size=16))
    run = prg.PRGRun(result, targets, world.images.shape[1], {"source": "student"})
    with zipfile.ZipFile(io.BytesIO(run.export_zip())) as zf:
        names = set(zf.namelist())
        assert {"README.txt", "prg_student.onnx", "prg_student.pt2", "prg_student.json"} <= names
        assert all((info.external_attr >> 16) & 0o777 == 0o644 for info in zf.infolist())
        readme = zf.read("README.txt").decode()
        assert "onnxruntime" in readme
        zf.extractall(tmp_path)
    Image.fromarray(world.images[0]).save(tmp_path / "photo.jpg")
    snippet = readme[readme.index("import json"):]
    (tmp_path / "snippet.py").write_text(snippet)
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    monkeypatch.setattr("sys.stdout", printed)
    runpy.run_path(str(tmp_path / "snippet.py"))
    assert printed.getvalue().strip() in {"a", "b", "c"}  # the README's snippet runs as written
