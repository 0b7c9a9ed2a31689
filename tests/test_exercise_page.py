"""AppTest of the classroom exercise: nothing rendered names the scenario until Reveal, the
diagnosis form accepts the right answer and rejects others, Reveal shows the answer and repair."""

from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict
from streamlit.testing.v1 import AppTest

from infi.demo.exercise import EXERCISES
from infi.demo.scenarios import scenario
from infi.ui import autosave, state
from tests.helpers import plain

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = ("pages/data.py", "pages/concepts.py", "pages/distill.py", "pages/finetune.py", "pages/exercise.py")
# Words of the ordinary demo that would give a background exercise away.
DEMO_HINTS = ("background shortcut", "which background drives", "scenario")


def rendered_text(at: AppTest) -> str:
    """Every string of every element and block the run rendered (labels, options, bodies, help),
    as a person reads it (Infi's markdown escapes removed, so an escaped name is still found)."""
    out: list[str] = []

    def strings(value) -> None:
        if isinstance(value, str):
            out.append(plain(value))
        elif isinstance(value, dict):
            for v in value.values():
                strings(v)
        elif isinstance(value, list):
            for v in value:
                strings(v)

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            strings(MessageToDict(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(out)


def hidden_words(name: str) -> list[str]:
    s = scenario(name)
    return [s.title, s.lesson, f"**{s.name}**", f"{s.name} scenario", *DEMO_HINTS]


def start(number: int) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("pages/exercise.py").run()
    at.selectbox(key=state.EXERCISE_PICK).set_value(str(number)).run()
    at.button(key=state.BTN_START_EXERCISE).click().run()
    assert not at.exception
    return at


def work_through(at: AppTest) -> None:
    """What a student does: teacher, concepts, a student (small, to keep the test quick)."""
    at.switch_page("pages/data.py").run()
    at.button(key=state.BTN_TEACHER).click().run()
    at.switch_page("pages/concepts.py").run()
    at.button(key=state.BTN_EXTRACT).click().run()
    at.switch_page("pages/distill.py").run()
    at.number_input(key=state.MEMBERS).set_value(4)
    at.button(key=state.BTN_DISTILL).click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state[state.SESSION].student is not None


@pytest.mark.parametrize("name", ["fill", "background"])
def test_no_page_names_the_scenario_until_reveal(name):
    at = start(EXERCISES.index(name) + 1)
    session = at.session_state[state.SESSION]
    assert session.dataset.source["exercise"] == str(EXERCISES.index(name) + 1)
    work_through(at)
    assert session.teacher_name == "exercise teacher"
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, page
        text = rendered_text(at)
        for word in hidden_words(name):
            assert word not in text, (page, word)
    at.switch_page("pages/exercise.py").run()
    at.button(key=state.BTN_REVEAL).click().run()
    text = rendered_text(at)
    assert scenario(name).title in text and scenario(name).lesson in text and f"**{name}** scenario" in text
    assert any(m.label == "Teacher on shifted images" for m in at.metric)
    assert any("On a copy of your student" in m.value for m in at.markdown)


def test_the_diagnosis_form_rejects_wrong_answers_and_accepts_the_right_one():
    at = start(EXERCISES.index("fill") + 1)  # squares striped, circles dotted, triangles solid
    work_through(at)
    session = at.session_state[state.SESSION]
    at.switch_page("pages/exercise.py").run()

    def answer(cls: str, concept: str):
        at.selectbox(key=state.DIAGNOSIS_CLASS).set_value(cls)
        at.selectbox(key=state.DIAGNOSIS_ANSWER).set_value(concept)
        at.button[[b.label for b in at.button].index("Check my diagnosis")].click().run()
        assert not at.exception

    answer("square", "red")
    assert at.warning and "Right class, wrong concept" in at.warning[0].value and not at.success
    answer("circle", "striped")  # every class of this world has its own fill: the group is right
    assert "right kind of concept, but not striped" in plain(at.warning[0].value)
    answer("square", "square")
    assert "describes the shape itself" in at.warning[0].value
    answer("square", "striped")
    assert at.success and "Right" in at.success[0].value and not at.warning
    assert "4 answers checked" in " ".join(c.value for c in at.caption)
    # Revealing is the person's choice; applying the repair is too, and it is logged.
    assert len(session.provenance) == 1
    at.button(key=state.BTN_REVEAL).click().run()
    at.button(key=state.BTN_APPLY_REPAIR).click().run()
    assert not at.exception and len(session.provenance) == 2
    assert session.provenance.steps[-1].label == "exercise repair"
    # Applied, the reveal says so and offers no second (no-op) repair.
    assert any("The repair is in place" in m.value for m in at.success)
    assert not [b for b in at.button if b.key == state.BTN_APPLY_REPAIR]
    # The same exercise started again is a new attempt: hidden, no answers yet.
    at.selectbox(key=state.EXERCISE_PICK).set_value(str(EXERCISES.index("fill") + 1)).run()
    at.button(key=state.BTN_START_EXERCISE).click().run()
    at.button(key=state.BTN_CONFIRM_REPLACE).click().run()  # the tuned student is set aside first
    assert not at.exception and at.session_state[state.SESSION].student is None
    text = rendered_text(at)
    assert scenario("fill").title not in text and "answers checked" not in text


def test_a_class_link_starts_its_exercise_unless_an_autosave_waits(tmp_path, monkeypatch):
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["exercise"] = "3"
    at.run()
    assert not at.exception
    source = at.session_state[state.SESSION].dataset.source
    assert source["exercise"] == "3"  # started on its own, on the exercise page
    assert any(h.value == "Exercise 3" for h in at.header)

    folder = autosave.folder()  # the test's private cache folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / autosave.FILE).write_bytes(b"saved")
    (folder / autosave.META).write_text("{}")
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["exercise"] = "3"
    at.run()
    assert at.session_state[state.SESSION].dataset is None  # the restore offer stays
    assert any("Restore it" in i.value for i in at.info)


def test_hosted_a_class_link_starts_and_nothing_is_written_to_the_server(tmp_path, monkeypatch):
    monkeypatch.setenv("INFI_HOSTED", "1")
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["exercise"] = "1"
    at.run()
    assert not at.exception and at.session_state[state.SESSION].dataset.source["exercise"] == "1"
    work_through(at)
    assert not autosave.folder().exists()  # no per-visitor file, even with a student


@pytest.mark.parametrize("value", ["0", "9", "../../etc/passwd", "<script>alert(1)</script>", "**bold**", "1e9"])
def test_a_hostile_exercise_link_starts_nothing_and_shows_nothing_of_it(value):
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["exercise"] = value
    at.run()
    assert not at.exception and at.session_state[state.SESSION].dataset is None
    if not value[0].isdigit():  # digits appear on the page anyway
        assert value not in rendered_text(at)  # never echoed, as text or markdown
    assert at.selectbox(key=state.EXERCISE_PICK).value == "1"  # the picker falls back to its first choice
