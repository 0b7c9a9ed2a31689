"""AppTest of every page and of the whole demo story, plus error paths."""

from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from infi.encoders import shared_encoder
from infi.tuning import TuningAction
from infi.ui import state
from infi.ui.finetune_view import editor_key, weight_table
from infi.ui.prg_view import METHOD_LABEL as COMPACT
from infi.ui.sidebar import tour_steps
from tests.helpers import notice, plain

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def new_app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=120).run()


def load_world(at: AppTest, n: int = 300) -> AppTest:
    at.number_input(key=state.WORLD_SIZE).set_value(n)
    at.button(key=state.BTN_LOAD_WORLD).click().run()
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_empty_states_guide_a_newcomer():
    at = new_app()
    assert_clean(at)
    assert any("Load Shapes World" in i.value for i in at.info)
    for page, hint in (("pages/concepts.py", "Load a dataset"), ("pages/distill.py", "Load a dataset"),
                       ("pages/finetune.py", "Distill a student")):
        at.switch_page(page).run()
        assert_clean(at)
        assert any(hint in i.value for i in at.info), page


def test_whole_demo_story_raises_shifted_accuracy():
    at = load_world(new_app(), 600)
    assert_clean(at)
    session = at.session_state[state.SESSION]
    assert len(session.dataset) == 600 and "shifted" in session.eval_sets
    at.button(key=state.BTN_TEACHER).click().run()
    assert_clean(at)
    assert session.P is not None and at.metric[0].label == "Images"

    at.switch_page("pages/concepts.py").run()
    at.button(key=state.BTN_EXTRACT).click().run()
    assert_clean(at)
    assert session.concepts is not None and session.concepts.X.shape == (600, 23)
    assert len(at.dataframe) >= 1

    at.switch_page("pages/distill.py").run()
    at.number_input(key=state.MEMBERS).set_value(5)
    at.button(key=state.BTN_DISTILL).click().run()
    assert_clean(at)
    assert session.student is not None
    labels = [m.label for m in at.metric]
    assert "Fidelity (held-out)" in labels and "Accuracy on shifted" in labels

    at.switch_page("pages/finetune.py").run()
    assert_clean(at)
    before = session.evaluate()["shifted_accuracy"]
    table = weight_table(session, "All classes")
    edits = {int(i): {"action": "remove"} for i in
             table.index[table["concept"].isin(["grass", "sky", "sand", "water", "brick", "plain"])]}
    at.selectbox(key=state.TUNE_CLASS).set_value("All classes").run()
    at.session_state[editor_key("All classes", table["concept"], 0)] = {"edited_rows": edits, "added_rows": [],
                                                                     "deleted_rows": []}
    at.run()
    at.button(key=state.BTN_APPLY).click().run()
    assert_clean(at)
    assert len(session.provenance) == 2
    after = session.evaluate()["shifted_accuracy"]
    assert after > before
    j = session.concepts.names.index("grass")
    assert np.all(session.student.coef_[:, j, :] == 0)
    # The tour ticks off the whole story.
    assert [done for _, done in tour_steps(session)] == [True] * 6


def test_a_compact_model_of_the_edited_student_trains_compares_and_exports():
    at = distilled_app(160)
    session = at.session_state[state.SESSION]
    session.tune([TuningAction.for_group("background", "remove")])
    at.radio(key=state.METHOD).set_value(COMPACT).run()
    assert at.radio(key=state.COMPACT_SOURCE).value == "student"  # the edited student comes first
    assert at.selectbox(key=state.compact_method_key("student")).value == "kd"
    at.number_input(key=state.compact_views_key("student")).set_value(1)
    at.number_input(key=state.PRG_EPOCHS).set_value(1)
    at.number_input(key=state.PRG_BATCH).set_value(32)
    at.button(key=state.BTN_PRG).click().run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    run = session.prg_run
    assert run is not None and run.figures["source"] == "student" and run.figures["views_per_image"] == 1
    assert {"Agreement with the source", "Best epoch", "Parameters"} <= {m.label for m in at.metric}
    accuracy = next(d.value for d in at.dataframe if "split" in d.value.columns)
    shifted = accuracy.set_index("split").loc["shifted"]
    assert shifted["source %"] == 100 * run.figures["shifted_source_accuracy"]
    assert 0 <= shifted["compact model %"] <= 100
    assert shifted["teacher %"] == 100 * run.figures["shifted_teacher_accuracy"]
    costs = next(d.value for d in at.dataframe if "model" in d.value.columns)
    assert costs["model"].iloc[0].startswith("compact model") and "CLIP image tower (demo)" in costs["model"].iloc[1]
    tower = shared_encoder("demo").model
    tower_params = sum(p.numel() for m in (tower.vision_model, tower.visual_projection) for p in m.parameters())
    assert costs["parameters"].iloc[1] == tower_params + run.figures["head_parameters"]
    assert costs["model"].iloc[2].startswith("teacher") and costs["ms per image (this machine)"].min() > 0
    assert any("deliberately tiny" in c.value for c in at.caption)  # why the compact model is not smaller here
    lost = run.figures["shifted_source_accuracy"] - run.figures["shifted_compact_accuracy"] > 0.10
    assert lost == any("did not learn the source's behaviour" in plain(w.value) for w in at.warning)
    # A rerun neither retrains nor re-times; a later edit of the student is flagged, the model kept.
    figures = dict(run.figures)
    at.run()
    assert session.prg_run is run and run.figures == figures
    assert not any("changed after this compact model" in w.value for w in at.warning)
    session.tune([TuningAction.for_group("colour", "remove")])
    at.run()
    assert_clean(at)
    assert session.prg_run is run and any("changed after this compact model" in w.value for w in at.warning)


def test_a_zero_shot_compact_model_without_class_names_says_so_and_keeps_the_dataset():
    at = load_world(new_app(), 60)
    at.switch_page("pages/distill.py").run()
    at.radio(key=state.METHOD).set_value(COMPACT).run()
    assert at.radio(key=state.COMPACT_SOURCE).options == ["CLIP zero-shot over class names"]
    assert any("first extract concepts, then distill a concept student" in c.value for c in at.caption)
    assert at.selectbox(key=state.compact_method_key("zero-shot")).value == "prg"
    at.text_input(key=state.PRG_CLASSES).set_value("circle")
    at.button(key=state.BTN_PRG).click().run()
    assert_clean(at)
    assert any("two class names" in plain(e.value) for e in at.error), [e.value for e in at.error]
    session = at.session_state[state.SESSION]
    assert session.prg_run is None and len(session.dataset) == 60


def test_export_files_built_on_click_hold_the_session(tmp_path):
    import io
    import zipfile

    import pandas as pd

    from infi.ui.finetune_view import concept_parquet, student_zip
    from tests.helpers import demo_session

    session = demo_session(n=120, members=2)
    frame = pd.read_parquet(io.BytesIO(concept_parquet(session)))
    assert list(frame.index) == list(session.dataset.ids) and list(frame.columns) == list(session.concepts.names)
    assert np.array_equal(frame.to_numpy(), session.concepts.X)
    with zipfile.ZipFile(io.BytesIO(student_zip(session))) as zf:
        names = sorted(zf.namelist())
        card = zf.read(next(n for n in names if n.endswith(".json")))
    assert any(n.endswith(".safetensors") for n in names) and b"fidelity" in card


def test_a_bundle_without_its_images_still_drives_every_page_until_they_are_reloaded():
    from infi.bundle import load_session, save_session
    from tests.helpers import uploaded_session, world_as_zip

    blob = world_as_zip(80, seed=31)
    at = new_app()
    at.session_state[state.SESSION] = load_session(save_session(uploaded_session(blob)))
    at.run()
    assert_clean(at)
    assert any("loaded from a bundle" in i.value for i in at.info)
    at.switch_page("pages/concepts.py").run()
    assert_clean(at)
    assert any("not loaded" in i.value for i in at.info) and len(at.dataframe) >= 1
    at.switch_page("pages/distill.py").run()
    assert_clean(at)
    assert "Fidelity (held-out)" in [m.label for m in at.metric]
    at.radio(key=state.METHOD).set_value(COMPACT).run()
    assert any("compact model trains on the images" in i.value for i in at.info)
    at.radio(key=state.METHOD).set_value("Concept student").run()
    at.switch_page("pages/finetune.py").run()
    assert_clean(at)
    # Reloading the same ZIP re-attaches the images and keeps the student.
    session = at.session_state[state.SESSION]
    student = session.student
    at.switch_page("pages/data.py").run()
    at.radio(key=state.DATA_SOURCE).set_value("ZIP in ImageFolder layout").run()
    at.file_uploader(key=state.ZIP_UPLOAD).set_value(("same.zip", blob, "application/zip")).run()
    at.button(key=state.BTN_LOAD_ZIP).click().run()
    assert_clean(at)
    assert session.dataset is not None and session.student is student
    assert "are kept" in notice(at)


def test_bad_zip_upload_shows_an_error_and_keeps_the_session():
    at = load_world(new_app(), 120)
    session = at.session_state[state.SESSION]
    at.radio(key=state.DATA_SOURCE).set_value("ZIP in ImageFolder layout").run()
    at.file_uploader(key=state.ZIP_UPLOAD).set_value(("broken.zip", b"this is not a zip", "application/zip")).run()
    at.button(key=state.BTN_LOAD_ZIP).click().run()
    assert_clean(at)
    assert any("Not a readable ZIP" in e.value for e in at.error)
    assert at.session_state[state.SESSION] is session and len(session.dataset) == 120


def test_bad_predictions_file_keeps_earlier_results():
    at = load_world(new_app(), 120)
    at.button(key=state.BTN_TEACHER).click().run()
    session = at.session_state[state.SESSION]
    P = session.P.copy()
    at.radio(key=state.TEACHER_KIND).set_value("Predictions file").run()
    at.file_uploader(key=state.PREDICTIONS_UPLOAD).set_value(("p.csv", b"id,a\nx,1\n", "text/csv")).run()
    at.button(key=state.BTN_TEACHER).click().run()
    assert_clean(at)
    assert any("1 classes, but the dataset has 6" in e.value for e in at.error)
    assert np.array_equal(session.P, P)


def test_pickled_model_uploaded_as_torchscript_is_named_and_leaves_nothing_on_disk(tmp_path, monkeypatch):
    import io
    import tempfile

    import torch

    at = load_world(new_app(), 60)
    at.button(key=state.BTN_TEACHER).click().run()
    session = at.session_state[state.SESSION]
    P = session.P.copy()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    blob = io.BytesIO()
    torch.save(torch.nn.Linear(3, 6), blob)
    at.radio(key=state.TEACHER_KIND).set_value("TorchScript file (legacy)").run()
    upload = ("evil.pt", blob.getvalue(), "application/octet-stream")
    at.file_uploader(key=state.TORCHSCRIPT_UPLOAD).set_value(upload).run()
    at.button(key=state.BTN_TEACHER).click().run()
    assert_clean(at)
    assert any("evil.pt: a torch.save checkpoint" in plain(e.value) for e in at.error), [e.value for e in at.error]
    assert np.array_equal(session.P, P)
    assert list(tmp_path.iterdir()) == []


def test_hosted_deployments_hide_the_local_folder_source(monkeypatch):
    monkeypatch.setenv("INFI_HOSTED", "1")
    at = new_app()
    assert "Local folder" not in at.radio(key=state.DATA_SOURCE).options
    assert at.number_input(key=state.WORLD_SIZE).max == 5000  # the hosted budget's world size
    monkeypatch.setenv("INFI_HOSTED", "0")
    at = new_app()
    assert "Local folder" in at.radio(key=state.DATA_SOURCE).options


def test_hosted_deployments_refuse_server_folders_as_models(monkeypatch, tmp_path):
    monkeypatch.setenv("INFI_HOSTED", "1")
    at = load_world(new_app(), 60)
    at.radio(key=state.TEACHER_KIND).set_value("Transformers checkpoint").run()
    at.text_input(key=state.HF_MODEL_ID).set_value("tests").run()  # a folder of this server
    at.button(key=state.BTN_TEACHER).click().run()
    assert_clean(at)
    assert any("'tests': local folders are disabled" in plain(e.value) for e in at.error), [e.value for e in at.error]
    # "demo" names the bundled encoder, never a folder of that name as a classifier.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    at.text_input(key=state.HF_MODEL_ID).set_value("demo").run()
    at.button(key=state.BTN_TEACHER).click().run()
    assert any("'demo': local folders are disabled" in plain(e.value) for e in at.error), [e.value for e in at.error]
    at.switch_page("pages/concepts.py").run()
    at.session_state[state.ENCODER_CHOICE] = "custom"
    at.run()
    at.text_input(key=state.ENCODER_CUSTOM).set_value("/etc").run()
    at.button(key=state.BTN_EXTRACT).click().run()
    assert_clean(at)
    assert any("'/etc': local folders are disabled" in plain(e.value) for e in at.error), [e.value for e in at.error]
    assert at.session_state[state.SESSION].concepts is None


def sidebar_app():
    from infi.ui import state as st_keys
    from infi.ui.replacing import open_question
    from infi.ui.sidebar import render_sidebar

    open_question(st_keys.get_session())  # as every page does: the dialog of a replacing step
    render_sidebar(st_keys.get_session())


def test_loading_a_bundle_warns_what_it_replaces_and_says_so_after():
    from infi.bundle import save_session
    from infi.tuning import TuningAction
    from infi.ui.sidebar import work_in
    from tests.helpers import demo_session

    current = demo_session(n=120, members=2)
    current.tune([TuningAction("grass", "remove")])
    assert work_in(current) == "teacher outputs, concept scores, student and 1 edit"
    at = AppTest.from_function(sidebar_app, default_timeout=60).run()
    at.session_state[state.SESSION] = current
    blob = save_session(demo_session(n=120, members=2, seed=1))
    at.sidebar.file_uploader(key=state.BUNDLE_UPLOAD).set_value(("other.infi", blob, "application/zip")).run()
    assert any("replaces this session's teacher outputs" in w.value for w in at.warning)
    at.sidebar.button(key=state.BTN_LOAD_BUNDLE).click().run()
    assert_clean(at)
    assert at.session_state[state.SESSION] is current  # a tuned student is not replaced unasked
    at.button(key=state.BTN_CONFIRM_REPLACE).click().run()
    assert_clean(at)
    assert at.session_state[state.SESSION] is not current
    assert "replaced the previous session's teacher outputs, concept scores, student and 1 edit" in \
        at.session_state[state.NOTICE]  # the sidebar alone: no app.py around it shows the notice
    kept = at.session_state[state.PREVIOUS][0]["session"]
    assert len(kept.provenance) == 2  # set aside with its edit, restorable from the sidebar


def test_corrupt_session_bundle_is_refused_in_the_sidebar():
    at = AppTest.from_function(sidebar_app, default_timeout=60).run()
    session = at.session_state[state.SESSION]
    at.sidebar.file_uploader(key=state.BUNDLE_UPLOAD).set_value(("x.infi", b"not a bundle", "application/zip")).run()
    at.sidebar.button(key=state.BTN_LOAD_BUNDLE).click().run()
    assert_clean(at)
    assert any("not an Infi session" in e.value for e in at.error)
    assert at.session_state[state.SESSION] is session


def test_evaluation_sets_are_shown_by_their_own_names():
    """Drift bug: the views assumed one evaluation set called "shifted"; any name works now."""
    from infi.demo.plugin import demo_corpus
    from infi.demo.teacher import DemoTeacherAdapter
    from infi.demo.world import from_world, generate_world
    from infi.session import Session
    from infi.tuning import TuningAction

    s = Session(seed=0)
    s.set_dataset(from_world(generate_world(160, seed=21)),
                  {"night shift": from_world(generate_world(80, split="shifted", seed=22))})
    s.run_teacher(DemoTeacherAdapter())
    s.set_encoder("demo")
    s.extract_concepts(demo_corpus(), "global")
    s.distill(n_members=2)
    s.tune([TuningAction("grass", "remove")])
    at = new_app()
    at.session_state[state.SESSION] = s
    at.switch_page("pages/distill.py").run()
    assert_clean(at)
    assert "Accuracy on night shift" in [m.label for m in at.metric]
    at.switch_page("pages/finetune.py").run()
    assert_clean(at)
    story = next(d.value for d in at.dataframe if "measure" in d.value.columns)
    measures = set(story["measure"])
    assert {"Accuracy on night shift", "Fidelity on night shift"} <= measures
    assert "night shift_accuracy" in s.provenance.table()[0]


def edit_rows(at: AppTest, session, cls: str, choices: dict[str, str | dict]) -> None:
    """Choose actions in the weight table as the browser would: by the rows shown right now."""
    from infi.ui.finetune_view import weight_table as table_of

    shown = table_of(session, cls)
    rows = {int(i): kind if isinstance(kind, dict) else {"action": kind} for i, kind in
            ((shown.index[shown["concept"] == c][0], k) for c, k in choices.items())}
    version = at.session_state[state.EDIT_VERSION] if state.EDIT_VERSION in at.session_state else 0
    key = editor_key(cls, shown["concept"], version)
    before = at.session_state[key]["edited_rows"] if key in at.session_state else {}
    rows = {**{int(r): v for r, v in before.items()}, **rows}  # the browser keeps earlier edits
    at.session_state[key] = {"edited_rows": rows, "added_rows": [], "deleted_rows": []}
    at.run()


def nonzero_concept(session, cls: str, but: tuple[str, ...] = ()) -> str:
    """The most influential concept of ``cls`` whose weight is not zero (an edit on it changes
    something; a lock on a weight held at zero is already in place)."""
    from infi.ui.finetune_view import weight_table as table_of

    table = table_of(session, cls)
    return next(c for c, w in zip(table["concept"], table["weight"]) if abs(w) > 1e-6 and c not in but)


def test_apply_records_exactly_the_chosen_edits_and_clears_the_table():
    """The stale-edit bug: after Apply the table re-sorted but kept choices by row position, so
    the next Apply hit concepts nobody chose. Choices are keyed by concept and cleared now."""
    from tests.helpers import demo_session

    session = demo_session(n=300, members=3)
    at = new_app()
    at.session_state[state.SESSION] = session
    at.switch_page("pages/finetune.py").run()
    at.selectbox(key=state.TUNE_CLASS).set_value("triangle").run()
    backgrounds = ["grass", "sky", "sand", "water", "brick", "plain"]
    edit_rows(at, session, "triangle", {c: "remove" for c in backgrounds})
    assert_clean(at)
    assert at.button(key=state.BTN_APPLY).label == "Apply 6 edits"
    at.button(key=state.BTN_APPLY).click().run()
    assert_clean(at)
    first = session.provenance.steps[1].actions
    assert sorted(a["concept"] for a in first) == sorted(backgrounds)
    assert at.session_state[state.PENDING] == {}
    assert at.button(key=state.BTN_APPLY).disabled  # nothing armed after Apply
    # Choose once more on the re-sorted table: exactly that one edit is applied.
    live = nonzero_concept(session, "triangle")
    edit_rows(at, session, "triangle", {live: "lock"})
    assert at.button(key=state.BTN_APPLY).label == "Apply 1 edit"
    at.button(key=state.BTN_APPLY).click().run()
    assert [(a["concept"], a["kind"]) for a in session.provenance.steps[2].actions] == [(live, "lock")]
    # Restore clears choices too, and Undo goes back one step, logged.
    edit_rows(at, session, "triangle", {"star": "remove"})
    at.button(key=state.BTN_RESTORE).click().run()
    assert at.session_state[state.PENDING] == {} and at.button(key=state.BTN_APPLY).disabled
    at.button(key=state.BTN_UNDO).click().run()
    assert_clean(at)
    assert session.provenance.steps[-1].label.startswith("undo step")


def test_choices_already_in_place_are_named_and_a_failed_apply_stays_on_screen():
    """Seen in chromium: re-choosing a lock already applied made Apply fail, and the browser's
    next rerun wiped the error while the choice stayed armed, so the page looked stale."""
    from tests.helpers import demo_session

    session = demo_session(n=300, members=3)
    at = new_app()
    at.session_state[state.SESSION] = session
    at.switch_page("pages/finetune.py").run()
    at.selectbox(key=state.TUNE_CLASS).set_value("triangle").run()
    live = nonzero_concept(session, "triangle")
    edit_rows(at, session, "triangle", {live: "lock"})
    at.button(key=state.BTN_APPLY).click().run()
    edit_rows(at, session, "triangle", {live: "lock"})
    assert at.button(key=state.BTN_APPLY).label == "Nothing to apply: already in place"
    assert at.button(key=state.BTN_APPLY).disabled
    assert any(f"lock {live} on triangle *(already in place" in m.value for m in at.markdown)
    other = nonzero_concept(session, "triangle", but=(live,))
    edit_rows(at, session, "triangle", {other: "remove"})
    assert at.button(key=state.BTN_APPLY).label == "Apply 1 edit"
    at.button(key=state.BTN_APPLY).click().run()
    assert_clean(at)
    assert [(a["concept"], a["kind"]) for a in session.provenance.steps[-1].actions] == [(other, "remove")]
    assert f"Left out, already in place: lock {live} on triangle" in notice(at)
    # A cell that is not a number is named before Apply, which waits for a fix.
    third = nonzero_concept(session, "triangle", but=(live, other))
    edit_rows(at, session, "triangle", {third: {"action": "downtune", "scale": "abc"}})
    assert at.button(key=state.BTN_APPLY).disabled and at.button(key=state.BTN_APPLY).label == "Fix the numbers first"
    assert any(f"scale of {third} on triangle: 'abc' is not a number" in plain(e.value) for e in at.error)
    # A failed Apply: the message survives the rerun that follows, and goes with the choices.
    steps = len(session.provenance)
    edit_rows(at, session, "triangle", {third: {"action": "downtune", "scale": "0.5"}})

    def failing_tune(*args, **kwargs):
        from infi.errors import TuningError

        raise TuningError("the refit could not meet these bounds")

    session.tune = failing_tune
    at.button(key=state.BTN_APPLY).click().run()
    at.run()
    del session.tune
    assert len(session.provenance) == steps
    assert [e.value for e in at.error if "could not meet these bounds" in e.value] != []
    assert len(at.error) == 1  # once, not once per run
    at.button(key=state.BTN_CLEAR_PENDING).click().run()
    assert not at.error


def test_a_group_edit_with_hold_others_and_what_took_over():
    from tests.helpers import demo_session

    session = demo_session(n=300, members=3)
    at = new_app()
    at.session_state[state.SESSION] = session
    at.switch_page("pages/finetune.py").run()
    at.selectbox(key=state.TUNE_CLASS).set_value("triangle").run()
    assert at.checkbox(key=state.HOLD_ON).value  # holding the others is the default
    at.checkbox(key=state.HOLD_ON).uncheck().run()
    at.selectbox(key=state.quick_concept_key("triangle")).set_value("group:background")
    at.selectbox(key=state.QUICK_ACTION).set_value("remove")
    at.button(key=state.BTN_QUICK).click().run()
    assert_clean(at)
    step = session.provenance.steps[-1]
    assert step.hold_others is None and {a["group"] for a in step.actions} == {"background"}
    assert step.label == "remove group: background (6 concepts) on triangle"
    took_over = session.compensation(-1)
    if took_over:  # shown as a warning when nothing was held
        assert any("Took over after the refit" in w.value for w in at.warning)
    provenance = next(d.value for d in at.dataframe if "actions" in d.value.columns)
    assert provenance["actions"].iloc[-1].startswith("remove background on triangle (grass, sky")


def test_settings_and_the_edited_concept_list_survive_a_page_switch():
    """Concept list, region mode and k reverted on a page switch; a person then re-extracted
    the whole vocabulary instead of their own list."""
    at = load_world(new_app(), 120)
    at.button(key=state.BTN_TEACHER).click().run()
    at.switch_page("pages/concepts.py").run()
    key = next(k for k in at.session_state if str(k).startswith(state.CORPUS_EDITOR))
    at.session_state[key] = {"edited_rows": {}, "added_rows": [], "deleted_rows": [0, 1]}
    at.radio(key=state.REGION_MODE).set_value("patches").run()
    assert_clean(at)
    at.switch_page("pages/data.py").run()
    at.switch_page("pages/concepts.py").run()
    assert at.radio(key=state.REGION_MODE).value == "patches"
    assert any("21 concepts" in c.value for c in at.caption)  # 23 demo concepts minus the two deleted
    at.button(key=state.BTN_EXTRACT).click().run()
    session = at.session_state[state.SESSION]
    assert session.concepts.X.shape[1] == 21 and session.concepts.mode == "patches"
    at.switch_page("pages/distill.py").run()
    at.number_input(key=state.MEMBERS).set_value(3).run()
    at.switch_page("pages/finetune.py").run()
    at.switch_page("pages/distill.py").run()
    assert at.number_input(key=state.MEMBERS).value == 3


def distilled_app(n: int = 200):
    from tests.helpers import app_with_concepts

    at = app_with_concepts(n)
    at.switch_page("pages/distill.py").run()
    at.number_input(key=state.MEMBERS).set_value(3)
    at.button(key=state.BTN_DISTILL).click().run()
    return at


def test_redistilling_a_tuned_student_asks_first_and_keeps_it_restorable():
    at = distilled_app()
    session = at.session_state[state.SESSION]
    session.tune([TuningAction("grass", "remove", "triangle")])
    tuned = session.student.coef_.copy()
    at.button(key=state.BTN_DISTILL).click().run()
    assert_clean(at)
    assert at.session_state[state.SESSION].student is session.student  # nothing replaced yet
    assert any("replaces the student and its 1 step" in m.value for m in at.markdown)
    at.button(key=state.BTN_CANCEL_REPLACE).click().run()
    assert len(at.session_state[state.SESSION].provenance) == 2
    at.button(key=state.BTN_DISTILL).click().run()
    at.button(key=state.BTN_CONFIRM_REPLACE).click().run()
    assert_clean(at)
    fresh = at.session_state[state.SESSION]
    assert len(fresh.provenance) == 1  # a new student
    # The sidebar (AppTest does not show the app-level sidebar under st.navigation: drive it alone).
    side = AppTest.from_function(sidebar_app, default_timeout=60)
    side.session_state[state.SESSION] = fresh
    side.session_state[state.PREVIOUS] = at.session_state[state.PREVIOUS]
    side.run()
    assert any("Previous session" in m.value and "1 step since the fit" in m.value for m in side.sidebar.markdown)
    side.sidebar.button(key=state.BTN_BRING_BACK).click().run()
    back = side.session_state[state.SESSION]
    assert len(back.provenance) == 2 and np.array_equal(back.student.coef_, tuned)
    assert side.session_state[state.PREVIOUS][0]["session"] is fresh  # swapped, not dropped


def app_frame():
    """What app.py does around every page: autosave, then the sidebar (AppTest runs the main
    script of an st.navigation app only once, so the frame is driven on its own)."""
    from infi.ui import state as st_keys
    from infi.ui.autosave import autosave
    from infi.ui.sidebar import render_sidebar

    session = st_keys.get_session()
    autosave(session)
    render_sidebar(session)


def test_autosave_restores_after_a_refresh_locally_and_writes_nothing_hosted(tmp_path, monkeypatch):
    from infi.ui.autosave import folder
    from tests.helpers import demo_session

    session = demo_session(n=120, members=2)
    at = AppTest.from_function(app_frame, default_timeout=60)
    at.session_state[state.SESSION] = session
    at.run()
    assert (folder() / "last-session.infi").is_file()
    stamp = (folder() / "last-session.infi").stat().st_mtime_ns
    at.run()  # nothing changed: nothing written again
    assert (folder() / "last-session.infi").stat().st_mtime_ns == stamp
    session.tune([TuningAction("grass", "remove")])
    at.run()  # a step: saved again, with the edit
    refreshed = AppTest.from_function(app_frame, default_timeout=60).run()  # a refresh: a new session
    assert refreshed.session_state[state.SESSION].student is None
    assert any("Your last session" in m.value for m in refreshed.sidebar.markdown)
    refreshed.sidebar.button(key=state.BTN_RESTORE_AUTOSAVE).click().run()
    assert_clean(refreshed)
    restored = refreshed.session_state[state.SESSION]
    assert len(restored.provenance) == 2 and np.array_equal(restored.student.coef_, session.student.coef_)

    monkeypatch.setenv("INFI_CACHE_DIR", str(tmp_path / "hosted-cache"))
    monkeypatch.setenv("INFI_HOSTED", "1")
    hosted = AppTest.from_function(app_frame, default_timeout=60)
    hosted.session_state[state.SESSION] = demo_session(n=120, members=2)
    hosted.run()
    assert not (tmp_path / "hosted-cache").exists()
    assert any("keeps nothing you make" in c.value for c in hosted.sidebar.caption)


def test_three_sessions_are_kept_aside_and_a_kept_one_survives_a_refresh():
    from infi.ui.autosave import KEPT_FILE, folder
    from tests.helpers import demo_session

    at = distilled_app(120)
    session = at.session_state[state.SESSION]
    for round_ in range(4):
        at.session_state[state.SESSION].tune([TuningAction("grass", "downtune", "triangle", scale=0.5 - 0.1 * round_)])
        at.button(key=state.BTN_DISTILL).click().run()
        if round_ == 3:
            assert any("the oldest" in w.value for w in at.warning)  # said before it is dropped
        at.button(key=state.BTN_CONFIRM_REPLACE).click().run()
    kept = at.session_state[state.PREVIOUS]
    assert len(kept) == 3 and kept[-1]["session"] is not session
    assert (folder() / KEPT_FILE).is_file()
    refreshed = AppTest.from_function(app_frame, default_timeout=60).run()
    refreshed.sidebar.button(key=state.BTN_RESTORE_KEPT).click().run()
    assert len(refreshed.session_state[state.SESSION].provenance) == 2  # the tuned one, not the fresh one
    del demo_session


EVIL_IMAGE = "![x](http://evil.example/t.png)"
EVIL_LINK = "[re-login](http://evil.example/login)"


def raw_markdown(at: AppTest) -> list[str]:
    """Every text the page renders through markdown (bodies and labels)."""
    texts = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "subheader", "title",
                 "header", "expander", "toast"):
        for element in getattr(at, kind, []):
            texts.append(str(getattr(element, "value", "") or getattr(element, "label", "")))
    texts += [m.label for m in at.metric]
    return texts


def test_names_a_person_chose_cannot_inject_markdown_on_any_page():
    """Folder names (classes), a concept and a teacher name rendered as a remote tracking image
    and a fake re-login link inside the app."""
    import re

    from infi.data import from_files
    from infi.demo.plugin import demo_corpus
    from infi.encoders import shared_encoder
    from infi.session import Session
    from infi.teachers import ClipZeroShotTeacher
    from tests.helpers import png_bytes

    files = [(f"{i}.png", png_bytes(value=20 * i)) for i in range(12)]
    labels = "image,label\n" + "".join(f"{i}.png,{EVIL_IMAGE if i % 2 else EVIL_LINK}\n" for i in range(12))
    session = Session(seed=0)
    session.set_dataset(from_files(files, labels.encode()))
    session.run_teacher(ClipZeroShotTeacher(shared_encoder("demo"), session.dataset.class_names, ("a {}",)))
    session.teacher_name = EVIL_LINK
    session.set_encoder("demo")
    corpus = demo_corpus()
    session.extract_concepts(corpus.with_concepts([*corpus.concepts[:5], EVIL_IMAGE]), "global")
    session.distill(n_members=2)
    active = re.compile(r"(?<!\\)!\[|(?<!\\)\]\(http")
    at = new_app()
    at.session_state[state.SESSION] = session
    for page in ("pages/data.py", "pages/concepts.py", "pages/distill.py", "pages/finetune.py"):
        at.switch_page(page).run()
        assert_clean(at)
        texts = raw_markdown(at)
        if page == "pages/data.py":
            assert any("evil" in t for t in texts)  # the names are shown, as text
        assert not [t for t in texts if active.search(t)], (page, [t for t in texts if active.search(t)])


def test_the_region_method_is_chosen_on_the_concepts_page_and_kept():
    at = load_world(new_app(), 80)
    at.button(key=state.BTN_TEACHER).click().run()
    at.switch_page("pages/concepts.py").run()
    assert at.selectbox(key=state.DENSE_METHOD).disabled  # global mode: no patches, no method
    assert at.selectbox(key=state.RESOLUTION).disabled
    assert at.selectbox(key=state.RESOLUTION).options == ["the checkpoint's own", "320", "448"]
    at.radio(key=state.REGION_MODE).set_value("segments").run()
    assert at.selectbox(key=state.DENSE_METHOD).value == "vanilla"  # the demo encoder's default
    at.selectbox(key=state.DENSE_METHOD).set_value("naclip").run()
    at.button(key=state.BTN_EXTRACT).click().run()
    assert_clean(at)
    session = at.session_state[state.SESSION]
    assert session.dense == "naclip" and session.concepts.mode == "segments"
    assert any("segments (naclip)" in c.value for c in at.caption)
    at.switch_page("pages/data.py").run()
    at.switch_page("pages/concepts.py").run()
    assert at.selectbox(key=state.DENSE_METHOD).value == "naclip"


def test_guardrails_when_the_data_does_not_fit_the_encoder():
    """Digits with the demo encoder: concepts at 0 on every image, the top influences roof and
    parrot, fidelity 18% and 'Next: the Fine-tune page'. Each is now said, with what helps."""
    from infi.data import from_files
    from infi.demo.plugin import demo_corpus
    from infi.session import Session
    from infi.teachers import PredictionsTeacher
    from tests.helpers import png_bytes

    files = [(f"{i}.png", png_bytes(value=10 * i, size=24)) for i in range(24)]
    session = Session(seed=0)
    session.set_dataset(from_files(files))
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(4) * 0.3, size=24)
    import pandas as pd

    table = pd.DataFrame(P, columns=list("abcd"), index=[f"{i}.png" for i in range(24)])
    session.run_teacher(PredictionsTeacher(table, None, tuple("abcd")))
    at = new_app()
    at.session_state[state.SESSION] = session
    at.switch_page("pages/concepts.py").run()
    assert any("trained on Shapes World only" in w.value for w in at.warning)
    session.set_encoder("demo")
    session.extract_concepts(demo_corpus(), "global")
    session.concepts.X[:, :2] = 0.0  # two concepts the encoder gives nothing for
    at.run()
    assert any("2 of 23 concepts score the same on every image" in w.value for w in at.warning)
    at.button(key=state.BTN_DROP_FLAT).click().run()
    assert_clean(at)
    assert len(session.concepts.names) == 21 and "Dropped 2 concepts" in notice(at)
    session.distill(n_members=2, nec=None, alpha=0.01)
    at.switch_page("pages/distill.py").run()
    assert_clean(at)
    fidelity = session.evaluate()["fidelity"]
    advice = [w.value for w in at.warning if "What usually helps" in w.value or "what usually" in w.value.lower()]
    assert fidelity < 0.7 and advice, (fidelity, advice)  # a random teacher: nothing to explain
    assert "demo encoder knows Shapes World only" in advice[0]


def test_a_broken_concept_list_is_an_error_and_the_page_keeps_working():
    from infi.ui.concepts_view import UPLOADED

    at = load_world(new_app(), 60)
    at.button(key=state.BTN_TEACHER).click().run()
    at.switch_page("pages/concepts.py").run()
    at.selectbox(key=state.keeps(state.CORPUS_CHOICE)["key"]).set_value(UPLOADED).run()
    at.file_uploader(key=state.CORPUS_UPLOAD).set_value(("list.csv", b"\xc3\x28 not text", "text/csv")).run()
    assert_clean(at)
    assert any("Reading list.csv failed" in plain(e.value) and "not UTF-8" in plain(e.value) for e in at.error)
    at.file_uploader(key=state.CORPUS_UPLOAD).set_value(("list.txt", b"grass\nsky\nred\n", "text/plain")).run()
    at.button(key=state.BTN_EXTRACT).click().run()
    assert_clean(at)
    assert at.session_state[state.SESSION].concepts.names == ("grass", "sky", "red")


def test_an_onnx_teacher_from_the_data_page(tmp_path):
    import torch

    from infi.export import export_onnx
    from tests.test_teachers import _Classifier

    at = load_world(new_app(), 60)
    n_classes = len(at.session_state[state.SESSION].dataset.class_names)
    export_onnx(_Classifier(n_classes).eval(), torch.rand(2, 3, 32, 32), tmp_path / "clf.onnx")
    at.radio(key=state.TEACHER_KIND).set_value("ONNX file").run()
    at.file_uploader(key=state.ONNX_UPLOAD).set_value(("clf.onnx", (tmp_path / "clf.onnx").read_bytes(),
                                                       "application/octet-stream")).run()
    at.button(key=state.BTN_TEACHER).click().run()
    assert_clean(at)
    session = at.session_state[state.SESSION]
    assert session.P.shape == (60, n_classes) and session.teacher_name == "clf.onnx"
    at.file_uploader(key=state.ONNX_UPLOAD).set_value(("bad.onnx", b"junk", "application/octet-stream")).run()
    at.button(key=state.BTN_TEACHER).click().run()
    assert any("not an ONNX model onnxruntime can run" in plain(e.value) for e in at.error)
    assert session.teacher_name == "clf.onnx"  # the earlier teacher is kept


def test_categories_typed_in_the_concept_editor_are_kept():
    """A row added with a category (and a category changed on a row) once became 'custom'."""
    at = load_world(new_app(), 120)
    at.switch_page("pages/concepts.py").run()
    key = next(k for k in at.session_state if str(k).startswith(state.CORPUS_EDITOR))
    at.session_state[key] = {"edited_rows": {0: {"category": "favourites"}},
                             "added_rows": [{"concept": "rainbow", "category": "colour"}, {"concept": "blob"}],
                             "deleted_rows": []}
    at.run()
    at.button(key=state.BTN_EXTRACT).click().run()
    assert_clean(at)
    corpus = at.session_state[state.SESSION].corpus
    category = dict(zip(corpus.concepts, corpus.categories))
    assert category["rainbow"] == "colour" and category["blob"] == "custom"
    assert category[corpus.concepts[0]] == "favourites"
