"""Embedding stores: `infi embed` in process and on a local Ray cluster gives the same numbers as
the app's own path; a store opens as a dataset without pixels and drives teacher, concepts,
student, edits and bundles; damaged or hostile stores are refused by name."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from infi.__main__ import main
from infi.bulk_embed import embed_to_store, list_images
from infi.bundle import load_session, save_session
from infi.concepts import build_bank, concept_scores
from infi.corpus import preset
from infi.data import from_folder
from infi.encoders import shared_encoder
from infi.errors import DataError, InputError, LimitError, SessionError
from infi.session import Session
from infi.store import MANIFEST, open_store
from infi.teachers import from_spec
from infi.tuning import TuningAction
from tests.helpers import notice, teacher_file, world_folder


@pytest.fixture(scope="module")
def local_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("local-store")
    images = world_folder(root / "images", 60)
    manifest = embed_to_store(images, root / "store", "demo", preset("demo"), batch_size=16)
    return images, root / "store", manifest


def test_local_store_matches_the_apps_own_embeddings_and_names_the_skipped_file(local_store):
    images, path, manifest = local_store
    store = open_store(path)
    assert manifest["count"] == 60 and manifest["skipped_count"] == 1
    assert manifest["skipped"][0]["id"].endswith("broken.png")
    session = Session()
    session.set_dataset(from_folder(images))
    session.set_encoder("demo")
    assert store.ids == session.dataset.ids  # same ids as the Data page gives the folder
    assert np.abs(store.embeddings - session.embed(patches=False).global_).max() <= 1e-5
    bank = build_bank(shared_encoder("demo"), preset("demo"))
    assert np.abs(store.scores - concept_scores(session.embeddings, bank, "global").X).max() <= 1e-5
    assert store.class_names == session.dataset.class_names
    assert (store.labels == session.dataset.labels).all()
    assert store.readable and store.image(0).size == (64, 64)


def test_ray_store_has_the_same_numbers_as_the_in_process_engine(ray_store, tmp_path):
    local = embed_to_store(ray_store.images, tmp_path / "local", "demo", preset("demo"))
    a, b = open_store(tmp_path / "local"), ray_store.store
    assert ray_store.manifest["engine"] == "ray" and ray_store.manifest["plan"]["model_workers"] >= 1
    assert a.ids == b.ids  # input order kept through Ray
    assert np.abs(a.embeddings - b.embeddings).max() <= 1e-5
    assert np.abs(a.scores - b.scores).max() <= 1e-5
    assert local["skipped"] == ray_store.manifest["skipped"] and local["skipped_count"] == 1


def test_a_store_drives_teacher_concepts_student_edits_and_bundles_without_pixels(local_store, tmp_path):
    _, path, _ = local_store
    store = open_store(path)
    session = Session(seed=1)
    assert session.open_store(store) == []
    assert session.dataset is None and session.status()["dataset"] == "60 images in an embedding store"
    session.run_teacher(from_spec(f"predictions:{teacher_file(store, tmp_path / 'p.csv')}", store.class_names))
    X = session.extract_concepts(preset("demo"), "global")
    assert np.array_equal(X.X, store.scores)  # the scores made while embedding are used as they are
    session.distill(n_members=3, nec=None)
    concept = session.concepts.names[int(np.abs(session.student.weights_[:, 0]).argmax())]
    step = session.tune([TuningAction(concept, "remove", session.class_names[0])])
    assert np.all(session.student.coef_[:, session.concepts.names.index(concept), 0] == 0)
    assert step.touched_classes == [session.class_names[0]]
    restored = load_session(save_session(session))
    assert restored.store is not None and restored.store.content_hash == store.content_hash  # reopened
    assert len(restored.provenance) == 2 and restored.image(0) is not None


def test_a_store_refuses_what_needs_pixels_by_name(local_store):
    _, path, _ = local_store
    session = Session()
    session.open_store(open_store(path))
    with pytest.raises(InputError, match="made with demo"):
        session.set_encoder("openai/clip-vit-base-patch32")
    with pytest.raises(InputError, match="runs on pixels"):
        session.run_teacher(from_spec("demo"))
    with pytest.raises(InputError, match="scores for another concept list"):
        session.extract_concepts(preset("colours"), "segments")
    with pytest.raises(SessionError, match="embedding store"):
        session.compact("zero-shot", class_names="a, b")
    session.run_teacher(from_spec("zeroshot:demo", session.class_names))  # zero-shot on the embeddings works
    assert session.P.shape == (60, len(session.class_names))
    assert (session.P.argmax(1) == session.labels).mean() > 0.5


def test_global_concepts_of_another_list_come_from_the_stored_embeddings(local_store):
    _, path, _ = local_store
    store = open_store(path)
    session = Session()
    session.open_store(store)
    X = session.extract_concepts(preset("colours"), "global")
    bank = build_bank(shared_encoder("demo"), preset("colours"))
    assert np.allclose(X.X, np.maximum(0, store.embeddings @ bank.embeddings.T), atol=1e-5)


def copy_store(path, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(path, target)
    return target


def edit_manifest(path, **changes):
    m = json.loads((path / MANIFEST).read_text())
    m.update(changes)
    (path / MANIFEST).write_text(json.dumps(m))


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / MANIFEST).unlink(), "did not finish"),
    (lambda p: edit_manifest(p, shards=[{"file": "../escape.parquet", "rows": 60}]), "not a file name"),
    (lambda p: edit_manifest(p, count=61), "the shards hold 60 rows"),
    (lambda p: edit_manifest(p, ids_hash="ids:" + "0" * 64), "do not match the manifest's hash"),
    (lambda p: edit_manifest(p, dim=64), "fixed-size lists of 64"),
    (lambda p: edit_manifest(p, format="something else"), "not an Infi embedding store"),
    (lambda p: (p / MANIFEST).write_text("{"), "not valid JSON"),
    (lambda p: (p / "part-00000.parquet").write_bytes(b"PAR1 junk"), "not a readable Parquet"),
])
def test_damaged_stores_are_refused_by_name(local_store, tmp_path, damage, message):
    path = copy_store(local_store[1], tmp_path)
    damage(path)
    with pytest.raises(DataError, match=message):
        open_store(path)


def test_non_unit_embeddings_are_refused(local_store, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = copy_store(local_store[1], tmp_path)
    table = pq.read_table(path / "part-00000.parquet")
    emb = np.stack(table.column("embedding").to_numpy(zero_copy_only=False)) * 3
    flat = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1).astype(np.float32)), emb.shape[1])
    pq.write_table(table.set_column(table.schema.get_field_index("embedding"), "embedding", flat),
                   path / "part-00000.parquet")
    with pytest.raises(DataError, match="unit vectors"):
        open_store(path)


def test_the_budget_is_checked_before_the_arrays_are_made(local_store, monkeypatch):
    monkeypatch.setenv("INFI_LIMIT_MAX_STORE_ROWS", "10")
    with pytest.raises(LimitError, match="INFI_LIMIT_MAX_STORE_ROWS"):
        open_store(local_store[1])
    monkeypatch.delenv("INFI_LIMIT_MAX_STORE_ROWS")
    monkeypatch.setenv("INFI_LIMIT_MAX_STORE_BYTES", "1000")
    with pytest.raises(LimitError, match="in memory"):
        open_store(local_store[1])


def test_writing_never_replaces_other_files_or_a_store_unasked(local_store, tmp_path):
    images = local_store[0]
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="holds other files"):
        embed_to_store(images, tmp_path / "busy", "demo")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    embed_to_store(images, tmp_path / "st", "demo")
    with pytest.raises(InputError, match="--overwrite"):
        embed_to_store(images, tmp_path / "st", "demo")
    assert embed_to_store(images, tmp_path / "st", "demo", overwrite=True)["count"] == 60
    with pytest.raises(InputError, match="region modes are scored while embedding"):
        embed_to_store(images, tmp_path / "st2", "demo", mode="segments")


def test_image_lists_in_text_csv_and_parquet(tmp_path, local_store):
    images = local_store[0]
    files = sorted(p for p in images.rglob("*.png") if p.name != "broken.png")[:5]
    (tmp_path / "list.txt").write_text("# five images\n" + "\n".join(str(p) for p in files) + "\n")
    refs = list_images(tmp_path / "list.txt")
    assert [r.path for r in refs] == [str(p) for p in files] and refs[0].label is None
    frame = pd.DataFrame({"path": [str(p.relative_to(images)) for p in files], "id": list("abcde"),
                          "label": [p.parent.name for p in files]})
    frame.to_csv(images / "table.csv", index=False)
    frame.to_parquet(images / "table.parquet")
    for name in ("table.csv", "table.parquet"):
        refs = list_images(images / name)
        assert [r.id for r in refs] == list("abcde") and refs[0].label == files[0].parent.name
        assert refs[0].path == str(files[0])  # relative to the list's folder
    pd.DataFrame({"file": ["x.png"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="needs a 'path' column"):
        list_images(tmp_path / "bad.csv")
    pd.DataFrame({"path": ["a.png", "b.png"], "id": ["x", "x"]}).to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(DataError, match="more than once"):
        list_images(tmp_path / "dup.csv")


def test_cli_embeds_a_folder_and_distills_from_the_store(local_store, tmp_path, capsys):
    images = local_store[0]
    assert main(["embed", "--images", str(images), "--out", str(tmp_path / "st"), "--scores", "--batch-size",
                 "20"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["count"] == 60 and out["skipped_count"] == 1 and out["engine"] == "local"
    store = open_store(tmp_path / "st")
    predictions = teacher_file(store, tmp_path / "p.csv")
    assert main(["distill", "--store", str(tmp_path / "st"), "--teacher", f"predictions:{predictions}",
                 "--members", "3", "--no-cache", "--out", str(tmp_path / "s.infi")]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["fidelity"] > 0.8
    assert main(["embed", "--images", str(images), "--out", str(tmp_path / "x"), "--model-workers", "2"]) == 2
    assert "options of --engine ray" in capsys.readouterr().err
    assert main(["distill", "--store", str(tmp_path / "st"), "--world", "biased:50:0", "--out",
                 str(tmp_path / "t.infi")]) == 2
    assert "give it alone" in capsys.readouterr().err


def test_a_ray_store_opens_in_the_app_and_drives_every_page(ray_store):
    from streamlit.testing.v1 import AppTest

    from infi.ui import state
    from infi.ui.data_view import SOURCES, TEACHERS
    from tests.test_pages import APP, assert_clean

    at = AppTest.from_file(APP, default_timeout=120).run()
    at.radio(key=state.DATA_SOURCE).set_value(SOURCES[4]).run()
    at.text_input(key=state.STORE_PATH).input(str(ray_store.path / "missing")).run()
    at.button(key=state.BTN_OPEN_STORE).click().run()
    assert_clean(at)
    assert any("not a folder" in e.value for e in at.error)  # a wrong path is named, nothing breaks
    at.text_input(key=state.STORE_PATH).input(str(ray_store.path)).run()
    at.button(key=state.BTN_OPEN_STORE).click().run()
    assert_clean(at)
    session = at.session_state[state.SESSION]
    assert session.store is not None and session.dataset is None
    assert "Opened a store of 200 images" in notice(at)
    assert [m.value for m in at.metric][:4] == ["200", "6", "200", "1"]  # images, classes, labelled, skipped
    assert [r.options for r in at.radio if r.key == state.TEACHER_KIND][0] == [TEACHERS[1], TEACHERS[4]]
    at.radio(key=state.TEACHER_KIND).set_value(TEACHERS[4]).run()
    at.button(key=state.BTN_TEACHER).click().run()
    assert_clean(at)
    assert session.P.shape == (200, 6)

    at.switch_page("pages/concepts.py").run()
    assert any("the one the embedding store was made with" in c.value for c in at.caption)
    at.button(key=state.BTN_EXTRACT).click().run()
    assert_clean(at)
    assert np.array_equal(session.concepts.X, ray_store.store.scores)

    at.switch_page("pages/distill.py").run()
    at.number_input(key=state.MEMBERS).set_value(3)
    at.button(key=state.BTN_DISTILL).click().run()
    assert_clean(at)
    assert "Fidelity (held-out)" in [m.label for m in at.metric]
    at.switch_page("pages/finetune.py").run()
    assert_clean(at)
    assert session.student is not None


def test_paths_are_stored_absolute_so_the_app_finds_them_from_anywhere(tmp_path, monkeypatch, local_store):
    images = local_store[0]
    shutil.copytree(images, tmp_path / "imgs")
    monkeypatch.chdir(tmp_path)
    embed_to_store("imgs", "st", "demo")  # relative, as a person types them
    store = open_store(tmp_path / "st")
    assert all(p.startswith("/") for p in store.paths)
    monkeypatch.chdir("/")
    assert store.image(0) is not None


def test_a_store_of_the_same_ids_made_with_another_encoder_does_not_keep_the_results(local_store, tmp_path):
    _, path, _ = local_store
    session = Session()
    session.open_store(open_store(path))
    session.run_teacher(from_spec("zeroshot:demo", session.class_names))
    session.extract_concepts(preset("demo"), "global")
    restored = load_session(save_session(session))
    other = copy_store(path, tmp_path)
    edit_manifest(other, encoder="openai/clip-vit-base-patch32")
    assert not restored.reattaches_store(open_store(other))
    cleared = restored.open_store(open_store(other))
    assert "teacher outputs" in cleared and restored.concepts is None
